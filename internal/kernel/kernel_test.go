package kernel

import (
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestFDCloseIsIdempotent(t *testing.T) {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFD(fd)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil || f.Int() != -1 {
		t.Fatalf("second Close: %v, Int %d", err, f.Int())
	}
}

func TestReadMemAndCString(t *testing.T) {
	// Read our own memory through process_vm_readv: a string that ends
	// exactly at the end of a mapping must still read (page by page).
	page := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if err := unix.Mprotect(mem[page:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	s := "/etc/hostname"
	start := page - len(s) - 1
	copy(mem[start:], s)
	mem[page-1] = 0
	addr := uint64(uintptr(unsafe.Pointer(&mem[start])))
	buf := make([]byte, 4096)
	got, ok, err := ReadCString(os.Getpid(), addr, buf)
	if err != nil || !ok || got != s {
		t.Fatalf("ReadCString = %q, %v, %v; want %q", got, ok, err, s)
	}
	// Running into the unmapped page unterminated is EFAULT, as the
	// kernel answers for such a string.
	mem[page-1] = 'x'
	if _, _, err = ReadCString(os.Getpid(), addr, buf); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("unterminated into an unmapped page: %v, want EFAULT", err)
	}
	// A pointer into nothing: EFAULT.
	if _, err := ReadMem(os.Getpid(), uint64(uintptr(unsafe.Pointer(&mem[page]))), buf[:8]); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("read of an unmapped page: %v, want EFAULT", err)
	}
}

func TestProbes(t *testing.T) {
	if err := ProbeUserNotif(); err != nil {
		if errors.Is(err, ErrUnsupported) && os.Getenv("ARCHANGEL_REQUIRE_ALL_FEATURES") != "1" {
			t.Skipf("skipped: %v", err)
		}
		t.Fatal(err)
	}
	if abi, err := LandlockABI(); err != nil {
		t.Logf("Landlock: %v", err)
	} else if abi < 1 {
		t.Fatalf("Landlock ABI %d", abi)
	}
	var fe *FeatureError
	err := error(&FeatureError{Feature: "X", MinKernel: "9.9"})
	if !errors.As(err, &fe) || !errors.Is(err, ErrUnsupported) || err.Error() != "X needs Linux >= 9.9" {
		t.Fatalf("FeatureError: %v", err)
	}
}
