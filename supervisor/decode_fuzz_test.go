package supervisor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
)

// encodeSockaddr is parseSockaddr's inverse, for the round-trip property.
func encodeSockaddr(t *testing.T, sa analyzer.SockAddr) []byte {
	b := make([]byte, 2, 28)
	binary.NativeEndian.PutUint16(b, sa.Family)
	switch {
	case sa.Family == unix.AF_INET || sa.Family == unix.AF_UNSPEC && sa.Addr.IsValid():
		b = b[:16]
		binary.BigEndian.PutUint16(b[2:], sa.Addr.Port())
		a := sa.Addr.Addr().As4()
		copy(b[4:], a[:])
	case sa.Family == unix.AF_INET6:
		b = b[:28]
		binary.BigEndian.PutUint16(b[2:], sa.Addr.Port())
		a := sa.Addr.Addr().As16()
		copy(b[8:], a[:])
		if z := sa.Addr.Addr().Zone(); z != "" {
			scope, err := strconv.ParseUint(z, 10, 32)
			if err != nil {
				t.Fatalf("zone %q is not a scope ID", z)
			}
			binary.NativeEndian.PutUint32(b[24:], uint32(scope))
		}
	case sa.Family == unix.AF_UNIX && sa.Abstract:
		b = append(append(b, 0), sa.Unix...)
	case sa.Family == unix.AF_UNIX && !sa.Unnamed:
		b = append(b, sa.Unix...)
	}
	return b
}

func FuzzDecodeSockaddr(f *testing.F) {
	f.Add(sockaddrIn("127.0.0.1", 80))
	f.Add(sockaddrIn6("fe80::1", 22, 3))
	f.Add(sockaddrIn6("::ffff:10.0.0.1", 443, 0)[:24])
	f.Add(sockaddrUn("/run/a.sock"))
	f.Add(sockaddrUn("\x00abstract\x00name"))
	f.Add(sockaddrUn(""))
	f.Add([]byte{0, 0, 0, 53, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{16, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		sa, err := parseSockaddr(b)
		if err != nil {
			if answerErrno(err) != unix.EINVAL || sa != (analyzer.SockAddr{}) {
				t.Fatalf("error %v (answer %v) with value %+v", err, answerErrno(err), sa)
			}
			return
		}
		if len(b) < 2 || sa.Family != binary.NativeEndian.Uint16(b) {
			t.Fatalf("family %d from %x", sa.Family, b)
		}
		switch sa.Family {
		case unix.AF_INET, unix.AF_INET6:
			if !sa.Addr.IsValid() {
				t.Fatalf("no address from %x", b)
			}
		case unix.AF_UNIX:
			if n := btoi(sa.Unnamed) + btoi(sa.Abstract) + btoi(!sa.Unnamed && !sa.Abstract); n != 1 {
				t.Fatalf("unix address both/neither unnamed, abstract, path: %+v", sa)
			}
			if !sa.Abstract && strings.IndexByte(sa.Unix, 0) >= 0 {
				t.Fatalf("NUL in a unix path: %q", sa.Unix)
			}
		default:
			if sa.Addr.IsValid() && sa.Family != unix.AF_UNSPEC || sa.Unix != "" {
				t.Fatalf("unknown family %d decoded as %+v", sa.Family, sa)
			}
		}
		again, err := parseSockaddr(encodeSockaddr(t, sa))
		if err != nil || again != sa {
			t.Fatalf("round trip: %+v -> %+v, %v", sa, again, err)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range [][2]string{{"/a/b", "../c"}, {"/", "//x/./y/"}, {"rel", "../../.."}, {"", ""},
		{"/proc", "self/fd/0"}, {"/a", "..."}, {"/a//", "b/../../c"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, base, p string) {
		r := normalizePath(base, p)
		switch {
		case !strings.HasPrefix(r, "/"):
			t.Fatalf("normalizePath(%q, %q) = %q: not absolute", base, p, r)
		case path.Clean(r) != r:
			t.Fatalf("normalizePath(%q, %q) = %q: not clean", base, p, r)
		case normalizePath("/elsewhere", r) != r:
			t.Fatalf("normalizePath(%q, %q) = %q: not idempotent", base, p, r)
		case strings.HasPrefix(p, "/") && r != path.Clean(p):
			t.Fatalf("absolute %q depends on the base: %q", p, r)
		}
		for _, e := range strings.Split(r[1:], "/") {
			if e == "." || e == ".." || (e == "" && r != "/") {
				t.Fatalf("normalizePath(%q, %q) = %q: element %q", base, p, r, e)
			}
		}
		if q := rewriteProcSelf(r, 12, 34); !strings.HasPrefix(q, "/") || path.Clean(q) != q ||
			strings.HasPrefix(q, "/proc/self/") || q == "/proc/self" || strings.HasPrefix(q, "/proc/thread-self") {
			t.Fatalf("rewriteProcSelf(%q) = %q", r, q)
		}
	})
}

func FuzzReadCString(f *testing.F) {
	f.Add([]byte("/etc/passwd\x00"), uint16(0), uint16(4096))
	f.Add([]byte("abc"), uint16(1), uint16(10))
	f.Add(bytes.Repeat([]byte("x"), 5000), uint16(100), uint16(4096))
	f.Add([]byte("a\x00b\x00"), uint16(2), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, off, max uint16) {
		if len(data) == 0 {
			return
		}
		i := int(off) % len(data)
		m := newFakeMem()
		start := m.allocEnd(data) // data ends at a page boundary, nothing mapped after
		pages := memPages{readAt: m.readAt}
		s, ok, err := pages.cString(start+uint64(i), int(max))

		// What the kernel's strncpy_from_user would see: the bytes from i
		// to the end of the mapping.
		mem := data[i:]
		limit := min(int(max), len(mem))
		nul := bytes.IndexByte(mem[:limit], 0)
		switch {
		case nul >= 0:
			if err != nil || !ok || s != string(mem[:nul]) {
				t.Fatalf("got %q, %v, %v; want %q", s, ok, err, mem[:nul])
			}
		case int(max) <= len(mem):
			if err != nil || ok || s != string(mem[:max]) {
				t.Fatalf("got %q, %v, %v; want truncated %q", s, ok, err, mem[:max])
			}
		default:
			if !errors.Is(err, unix.EFAULT) || ok || s != "" {
				t.Fatalf("got %q, %v, %v; want EFAULT", s, ok, err)
			}
		}
	})
}

// FuzzDecodeNotif decodes arbitrary notifications against an arbitrary
// address space: no panic, validate last, error xor a well-formed call.
func FuzzDecodeNotif(f *testing.F) {
	const base = 0x10000
	f.Add(uint16(257), uint64(fdcwd), uint64(base), uint64(0), uint64(0), uint64(0), uint64(0), []byte("a/../b\x00"))
	f.Add(uint16(59), uint64(base), uint64(base+16), uint64(0), uint64(0), uint64(0), uint64(0),
		append([]byte("/bin/sh\x00\x00\x00\x00\x00\x00\x00\x00\x00"), 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add(uint16(42), uint64(3), uint64(base), uint64(16), uint64(0), uint64(0), uint64(0), sockaddrIn("1.2.3.4", 5))
	f.Add(uint16(46), uint64(3), uint64(base), uint64(0), uint64(0), uint64(0), uint64(0), msghdr(base+64, 110))
	f.Add(uint16(307), uint64(3), uint64(base), uint64(3), uint64(0), uint64(0), uint64(0), msghdr(base+64, 16))
	f.Add(uint16(437), uint64(3), uint64(base+24), uint64(base), uint64(24), uint64(0), uint64(0), []byte("\x40\x00\x00\x00\x00\x00\x00\x00\xff\x01\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00x\x00"))
	f.Add(uint16(266), uint64(base), uint64(4), uint64(base+2), uint64(0), uint64(0), uint64(0), []byte("x\x00y\x00"))
	f.Fuzz(func(t *testing.T, nr uint16, a0, a1, a2, a3, a4, a5 uint64, mem []byte) {
		ft := newFakeTarget()
		ft.mem.place(base, mem)
		n := notif(t, "getpid", a0, a1, a2, a3, a4, a5)
		n.Data.Nr = int32(nr % 512)
		c, err := decodeCall(ft, n)
		if ft.validates != 1 || ft.unchecked != 0 {
			t.Fatalf("validate called %d times, %d reads after it", ft.validates, ft.unchecked)
		}
		if err != nil {
			switch answerErrno(err) {
			case unix.EFAULT, unix.EINVAL, unix.ENOENT, unix.EBADF, unix.ENOTDIR, unix.E2BIG:
			default:
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		for _, p := range []string{c.Path, c.Path2} {
			if p != "" && (!strings.HasPrefix(p, "/") || path.Clean(p) != p) {
				t.Fatalf("path %q is not absolute and clean", p)
			}
		}
		if c.Addr != nil && c.Addr.Family == unix.AF_UNIX && !c.Addr.Abstract && !c.Addr.Unnamed && !strings.HasPrefix(c.Addr.Unix, "/") {
			t.Fatalf("unix path %q not resolved", c.Addr.Unix)
		}
		if (c.Kind == analyzer.KindConnect || c.Kind == analyzer.KindBind) != (c.Addr != nil) {
			t.Fatalf("kind %v with address %+v", c.Kind, c.Addr)
		}
		if len(c.Argv) > maxArgv {
			t.Fatalf("argv of %d", len(c.Argv))
		}
	})
}
