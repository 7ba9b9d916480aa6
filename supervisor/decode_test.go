package supervisor

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
)

// fakeMem is a sparse address space of whole pages: anything not placed is
// unmapped (EFAULT), like a real process's holes.
type fakeMem struct {
	pages map[uint64]*[memPageSize]byte
	next  uint64 // bump allocator for alloc
}

func newFakeMem() *fakeMem {
	return &fakeMem{pages: map[uint64]*[memPageSize]byte{}, next: 0x10000}
}

// place maps the pages under [addr, addr+len(b)) and copies b there.
func (m *fakeMem) place(addr uint64, b []byte) {
	for i, c := range b {
		a := addr + uint64(i)
		pg := m.pages[a&^(memPageSize-1)]
		if pg == nil {
			pg = new([memPageSize]byte)
			m.pages[a&^(memPageSize-1)] = pg
		}
		pg[a&(memPageSize-1)] = c
	}
}

// alloc places b at a fresh address, followed by an unmapped page.
func (m *fakeMem) alloc(b []byte) uint64 {
	a := m.next
	m.place(a, b)
	m.next = (a + uint64(len(b)) + 2*memPageSize) &^ (memPageSize - 1)
	return a
}

// allocEnd places b so that it ends exactly at a page boundary with the
// next page unmapped.
func (m *fakeMem) allocEnd(b []byte) uint64 {
	end := (m.next + uint64(len(b)) + memPageSize) &^ (memPageSize - 1)
	a := end - uint64(len(b))
	m.place(a, b)
	m.next = end + memPageSize
	return a
}

func (m *fakeMem) str(s string) uint64 { return m.alloc(append([]byte(s), 0)) }

func (m *fakeMem) u64s(vs ...uint64) uint64 {
	b := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.NativeEndian.PutUint64(b[8*i:], v)
	}
	return m.alloc(b)
}

func (m *fakeMem) readAt(addr uint64, buf []byte) (int, error) {
	pg := m.pages[addr]
	if pg == nil {
		return 0, unix.EFAULT
	}
	return copy(buf, pg[:]), nil
}

// fakeTarget is a memReader over fakeMem that checks the validate
// discipline: it counts reads made after the last validate.
type fakeTarget struct {
	mem       *fakeMem
	pages     memPages
	cwdPath   string
	fds       map[int32]string
	um        uint32
	proc      analyzer.Process
	gone      bool
	validates int
	unchecked int // reads since the last validate
	forgets   int
}

func newFakeTarget() *fakeTarget {
	f := &fakeTarget{
		mem:     newFakeMem(),
		cwdPath: "/home/u/work",
		fds:     map[int32]string{3: "/srv/data", 4: "socket:[1234]", 5: "/usr/bin/true", 6: "/memfd:x (deleted)"},
		um:      0o022,
		proc:    analyzer.Process{PID: 100, TID: 101, PPID: 1, Exe: "/usr/bin/victim", Comm: "victim"},
	}
	f.pages.readAt = f.mem.readAt
	return f
}

func (f *fakeTarget) read(addr uint64, buf []byte) error {
	f.unchecked++
	return f.pages.read(addr, buf)
}

func (f *fakeTarget) cString(addr uint64, max int) (string, bool, error) {
	f.unchecked++
	return f.pages.cString(addr, max)
}

func (f *fakeTarget) cwd() (string, error) { f.unchecked++; return f.cwdPath, nil }

func (f *fakeTarget) fdPath(fd int32) (string, error) {
	f.unchecked++
	p, ok := f.fds[fd]
	if !ok {
		return "", unix.EBADF
	}
	return p, nil
}

func (f *fakeTarget) umask() (uint32, error)             { f.unchecked++; return f.um, nil }
func (f *fakeTarget) process() (analyzer.Process, error) { f.unchecked++; return f.proc, nil }
func (f *fakeTarget) forget()                            { f.forgets++ }

func (f *fakeTarget) validate() error {
	f.validates++
	if f.gone {
		return kernel.ErrNotifGone
	}
	f.unchecked = 0
	return nil
}

func nr(t testing.TB, name string) int32 {
	t.Helper()
	n, ok := profiles.SyscallNr(name)
	if !ok {
		t.Fatalf("no syscall %q", name)
	}
	return int32(n)
}

func notif(t testing.TB, name string, args ...uint64) *kernel.Notif {
	n := &kernel.Notif{ID: 7, PID: 101, Data: kernel.SeccompData{Nr: nr(t, name), Arch: auditArchX8664}}
	copy(n.Data.Args[:], args)
	return n
}

const fdcwd = uint64(0xffffffffffffff9c) // AT_FDCWD sign-extended, as libc passes it

func sockaddrIn(ip string, port uint16) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint16(b, unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], port)
	a := netip.MustParseAddr(ip).As4()
	copy(b[4:], a[:])
	return b
}

func sockaddrIn6(ip string, port uint16, scope uint32) []byte {
	b := make([]byte, 28)
	binary.NativeEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], port)
	a := netip.MustParseAddr(ip).As16()
	copy(b[8:], a[:])
	binary.NativeEndian.PutUint32(b[24:], scope)
	return b
}

func sockaddrUn(path string) []byte {
	b := make([]byte, 2, 2+len(path))
	binary.NativeEndian.PutUint16(b, unix.AF_UNIX)
	return append(b, path...)
}

func msghdr(name uint64, namelen uint32) []byte {
	b := make([]byte, sizeofMsghdr)
	binary.NativeEndian.PutUint64(b, name)
	binary.NativeEndian.PutUint32(b[8:], namelen)
	return b
}

func addrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestDecodeCalls(t *testing.T) {
	type check func(t *testing.T, c analyzer.Call)
	path := func(want string) check {
		return func(t *testing.T, c analyzer.Call) {
			if c.Path != want {
				t.Errorf("Path = %q, want %q", c.Path, want)
			}
		}
	}
	path2 := func(want string) check {
		return func(t *testing.T, c analyzer.Call) {
			if c.Path2 != want {
				t.Errorf("Path2 = %q, want %q", c.Path2, want)
			}
		}
	}
	kind := func(k analyzer.Kind, a analyzer.Access) check {
		return func(t *testing.T, c analyzer.Call) {
			if c.Kind != k || c.Access != a {
				t.Errorf("Kind, Access = %v, %b; want %v, %b", c.Kind, c.Access, k, a)
			}
		}
	}
	flagsMode := func(flags uint64, mode uint32) check {
		return func(t *testing.T, c analyzer.Call) {
			if c.Flags != flags || c.Mode != mode {
				t.Errorf("Flags, Mode = %#x, %#o; want %#x, %#o", c.Flags, c.Mode, flags, mode)
			}
		}
	}
	addr := func(want analyzer.SockAddr) check {
		return func(t *testing.T, c analyzer.Call) {
			if c.Addr == nil || *c.Addr != want {
				t.Errorf("Addr = %+v, want %+v", c.Addr, want)
			}
		}
	}
	noAddr := func(t *testing.T, c analyzer.Call) {
		if c.Addr != nil || c.Kind != analyzer.KindOther {
			t.Errorf("Addr, Kind = %+v, %v; want none, other", c.Addr, c.Kind)
		}
	}
	argv := func(want ...string) check {
		return func(t *testing.T, c analyzer.Call) {
			if !slices.Equal(c.Argv, want) {
				t.Errorf("Argv = %q, want %q", c.Argv, want)
			}
		}
	}
	truncated := func(want bool) check {
		return func(t *testing.T, c analyzer.Call) {
			if c.Truncated != want {
				t.Errorf("Truncated = %v, want %v", c.Truncated, want)
			}
		}
	}
	forgets := func(f *fakeTarget) check {
		return func(t *testing.T, c analyzer.Call) {
			if f.forgets != 1 {
				t.Errorf("identity forgotten %d times, want 1", f.forgets)
			}
		}
	}

	longArgv := func(m *fakeMem, n int) uint64 {
		ptrs := make([]uint64, n+1)
		for i := range n {
			ptrs[i] = m.str("x")
		}
		return m.u64s(ptrs...)
	}

	tests := []struct {
		name    string
		call    func(f *fakeTarget) *kernel.Notif
		want    []check
		errno   unix.Errno // expected answerErrno; 0 for success
		checks  func(f *fakeTarget) []check
		wantErr bool
	}{
		{name: "openat relative to cwd, AT_FDCWD sign-extended",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "openat", fdcwd, f.mem.str("a/./b//c/../d"), unix.O_RDONLY)
			},
			want: []check{path("/home/u/work/a/b/d"), kind(analyzer.KindOpen, accR), flagsMode(0, 0)}},
		{name: "openat AT_FDCWD with garbage in the upper half",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "openat", 0xdeadbeefffffff9c, f.mem.str("x"), unix.O_WRONLY)
			},
			want: []check{path("/home/u/work/x"), kind(analyzer.KindOpen, accW)}},
		{name: "openat relative to dirfd",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "openat", 3, f.mem.str("../etc/passwd"), unix.O_RDWR)
			},
			want: []check{path("/srv/etc/passwd"), kind(analyzer.KindOpen, accR|accW)}},
		{name: "openat absolute ignores a bad dirfd",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "openat", 99, f.mem.str("/etc/../etc/hosts/"), 0)
			},
			want: []check{path("/etc/hosts")}},
		{name: "dotdot above the root stays at the root",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "open", f.mem.str("../../../../../etc/shadow"), 0)
			},
			want: []check{path("/etc/shadow")}},
		{name: "proc self",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "open", f.mem.str("/proc/self/mem"), unix.O_RDWR) },
			want: []check{path("/proc/100/mem")}},
		{name: "proc thread-self",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "open", f.mem.str("//proc/./thread-self/attr/current"), unix.O_RDONLY)
			},
			want: []check{path("/proc/100/task/101/attr/current")}},
		{name: "proc self relative to cwd /proc",
			call: func(f *fakeTarget) *kernel.Notif {
				f.cwdPath = "/proc"
				return notif(t, "open", f.mem.str("self"), unix.O_RDONLY)
			},
			want: []check{path("/proc/100")}},
		{name: "proc selfish is not self",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "open", f.mem.str("/proc/selfish"), 0) },
			want: []check{path("/proc/selfish")}},
		{name: "O_CREAT mode after umask",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "openat", fdcwd, f.mem.str("new"), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o4777)
			},
			want: []check{path("/home/u/work/new"), kind(analyzer.KindOpen, accW), flagsMode(unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o4755)}},
		{name: "mode ignored without O_CREAT",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "openat", fdcwd, f.mem.str("old"), unix.O_RDONLY|unix.O_APPEND, 0o777)
			},
			want: []check{kind(analyzer.KindOpen, accR|accW), flagsMode(unix.O_APPEND, 0)}},
		{name: "O_TRUNC on a read-only open writes",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "open", f.mem.str("/tmp/f"), unix.O_RDONLY|unix.O_TRUNC)
			},
			want: []check{kind(analyzer.KindOpen, accR|accW)}},
		{name: "O_TMPFILE creates with a mode",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "open", f.mem.str("/tmp"), unix.O_TMPFILE|unix.O_RDWR, 0o666)
			},
			want: []check{kind(analyzer.KindOpen, accR|accW), flagsMode(unix.O_TMPFILE|unix.O_RDWR, 0o644)}},
		{name: "O_PATH drops other flags and reads",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "open", f.mem.str("/etc"), unix.O_PATH|unix.O_WRONLY|unix.O_CREAT|unix.O_DIRECTORY, 0o777)
			},
			want: []check{kind(analyzer.KindOpen, accR), flagsMode(unix.O_PATH|unix.O_DIRECTORY, 0)}},
		{name: "unknown open flags dropped",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "open", f.mem.str("/etc/hosts"), 0x7000_0000_8000_0000)
			},
			want: []check{flagsMode(0, 0), kind(analyzer.KindOpen, accR)}},
		{name: "creat",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "creat", f.mem.str("c"), 0o666) },
			want: []check{path("/home/u/work/c"), kind(analyzer.KindOpen, accW), flagsMode(unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC, 0o644)}},
		{name: "openat2 open_how",
			call: func(f *fakeTarget) *kernel.Notif {
				how := f.mem.u64s(unix.O_CREAT|unix.O_RDWR, 0o640, unix.RESOLVE_NO_SYMLINKS)
				return notif(t, "openat2", 3, f.mem.str("x/y"), how, 24)
			},
			want: []check{path("/srv/data/x/y"), kind(analyzer.KindOpen, accR|accW), flagsMode(unix.O_CREAT|unix.O_RDWR, 0o640)}},
		{name: "openat2 larger open_how with zero tail",
			call: func(f *fakeTarget) *kernel.Notif {
				how := f.mem.u64s(unix.O_RDONLY, 0, 0, 0, 0)
				return notif(t, "openat2", fdcwd, f.mem.str("/a"), how, 40)
			},
			want: []check{path("/a")}},
		{name: "openat2 RESOLVE_IN_ROOT",
			call: func(f *fakeTarget) *kernel.Notif {
				how := f.mem.u64s(unix.O_RDONLY, 0, unix.RESOLVE_IN_ROOT)
				return notif(t, "openat2", 3, f.mem.str("/../../etc/passwd"), how, 24)
			},
			want: []check{path("/srv/data/etc/passwd")}},
		{name: "openat2 short open_how",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "openat2", fdcwd, f.mem.str("/a"), f.mem.u64s(0, 0, 0), 16)
			},
			errno: unix.EINVAL},
		{name: "openat2 unknown fields",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "openat2", fdcwd, f.mem.str("/a"), f.mem.u64s(0, 0, 0, 1), 32)
			},
			errno: unix.E2BIG},
		{name: "openat2 huge size",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "openat2", fdcwd, f.mem.str("/a"), f.mem.u64s(0, 0, 0), 1<<20)
			},
			errno: unix.E2BIG},
		{name: "unreadable path is EFAULT",
			call:  func(f *fakeTarget) *kernel.Notif { return notif(t, "openat", fdcwd, 8, 0) },
			errno: unix.EFAULT},
		{name: "empty path is ENOENT",
			call:  func(f *fakeTarget) *kernel.Notif { return notif(t, "openat", 3, f.mem.str(""), 0) },
			errno: unix.ENOENT},
		{name: "bad dirfd is EBADF",
			call:  func(f *fakeTarget) *kernel.Notif { return notif(t, "openat", 42, f.mem.str("x"), 0) },
			errno: unix.EBADF},
		{name: "negative dirfd is EBADF",
			call:  func(f *fakeTarget) *kernel.Notif { return notif(t, "openat", 0xffffffff, f.mem.str("x"), 0) },
			errno: unix.EBADF},
		{name: "socket dirfd is ENOTDIR",
			call:  func(f *fakeTarget) *kernel.Notif { return notif(t, "openat", 4, f.mem.str("x"), 0) },
			errno: unix.ENOTDIR},
		{name: "path ending at an unmapped page",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "open", f.mem.allocEnd([]byte("/edge/of/the/page\x00")), 0)
			},
			want: []check{path("/edge/of/the/page"), truncated(false)}},
		{name: "path running into an unmapped page is EFAULT",
			call:  func(f *fakeTarget) *kernel.Notif { return notif(t, "open", f.mem.allocEnd([]byte("/no/nul")), 0) },
			errno: unix.EFAULT},
		{name: "path without NUL within PATH_MAX is truncated",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "open", f.mem.alloc([]byte("/"+strings.Repeat("a", 5000)+"\x00")), 0)
			},
			want: []check{truncated(true), path("/" + strings.Repeat("a", maxPath-1))}},
		{name: "path of PATH_MAX-1 bytes is whole",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "open", f.mem.str("/"+strings.Repeat("b", maxPath-2)), 0)
			},
			want: []check{truncated(false), path("/" + strings.Repeat("b", maxPath-2))}},
		{name: "newfstatat AT_EMPTY_PATH on a socket",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "newfstatat", 4, f.mem.str(""), 0x1000, unix.AT_EMPTY_PATH)
			},
			want: []check{path("/proc/100/fd/4"), kind(analyzer.KindStat, accR), flagsMode(unix.AT_EMPTY_PATH, 0)}},
		{name: "statx NULL path with AT_EMPTY_PATH",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "statx", 3, 0, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
			},
			want: []check{path("/srv/data")}},
		{name: "statx empty path without AT_EMPTY_PATH",
			call:  func(f *fakeTarget) *kernel.Notif { return notif(t, "statx", 3, f.mem.str(""), 0) },
			errno: unix.ENOENT},
		{name: "readlinkat empty path is the descriptor",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "readlinkat", 3, f.mem.str(""), 0x2000, 64) },
			want: []check{path("/srv/data"), kind(analyzer.KindStat, accR)}},
		{name: "faccessat2",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "faccessat2", fdcwd, f.mem.str("f"), unix.W_OK, unix.AT_EACCESS)
			},
			want: []check{path("/home/u/work/f"), kind(analyzer.KindStat, accR), flagsMode(unix.AT_EACCESS, 0)}},
		{name: "execve argv",
			call: func(f *fakeTarget) *kernel.Notif {
				av := f.mem.u64s(f.mem.str("ls"), f.mem.str("-l"), f.mem.str(""), f.mem.str("a b"), 0)
				return notif(t, "execve", f.mem.str("bin/ls"), av, 0)
			},
			want:   []check{path("/home/u/work/bin/ls"), kind(analyzer.KindExec, accX), argv("ls", "-l", "", "a b"), truncated(false)},
			checks: func(f *fakeTarget) []check { return []check{forgets(f)} }},
		{name: "execve NULL argv",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "execve", f.mem.str("/bin/true"), 0, 0) },
			want: []check{path("/bin/true"), argv()}},
		{name: "execve argv strings on one page",
			call: func(f *fakeTarget) *kernel.Notif {
				strs := f.mem.alloc([]byte("sh\x00-c\x00echo hi\x00"))
				av := f.mem.u64s(strs, strs+3, strs+6, 0)
				return notif(t, "execve", f.mem.str("/bin/sh"), av, 0)
			},
			want: []check{argv("sh", "-c", "echo hi")}},
		{name: "execve bad argv pointer",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "execve", f.mem.str("/bin/true"), f.mem.u64s(f.mem.str("a"), 12, 0), 0)
			},
			errno: unix.EFAULT},
		{name: "execve argv of exactly maxArgv",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "execve", f.mem.str("/bin/true"), longArgv(f.mem, maxArgv), 0)
			},
			want: []check{truncated(false), func(t *testing.T, c analyzer.Call) {
				if len(c.Argv) != maxArgv {
					t.Errorf("len(Argv) = %d", len(c.Argv))
				}
			}}},
		{name: "execve argv beyond maxArgv",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "execve", f.mem.str("/bin/true"), longArgv(f.mem, maxArgv+1), 0)
			},
			want: []check{truncated(true), func(t *testing.T, c analyzer.Call) {
				if len(c.Argv) != maxArgv {
					t.Errorf("len(Argv) = %d", len(c.Argv))
				}
			}}},
		{name: "execve argv beyond maxArgvSize",
			call: func(f *fakeTarget) *kernel.Notif {
				big := strings.Repeat("z", 100<<10)
				return notif(t, "execve", f.mem.str("/bin/true"), f.mem.u64s(f.mem.str(big), f.mem.str(big), f.mem.str("c"), 0), 0)
			},
			want: []check{truncated(true), func(t *testing.T, c analyzer.Call) {
				if len(c.Argv) != 2 || len(c.Argv[0])+1+len(c.Argv[1]) != maxArgvSize {
					t.Errorf("argv of %d strings", len(c.Argv))
				}
			}}},
		{name: "execveat AT_EMPTY_PATH",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "execveat", 5, f.mem.str(""), f.mem.u64s(f.mem.str("true"), 0), 0, unix.AT_EMPTY_PATH)
			},
			want: []check{path("/usr/bin/true"), argv("true"), kind(analyzer.KindExec, accX)}},
		{name: "execveat memfd",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "execveat", 6, f.mem.str(""), 0, 0, unix.AT_EMPTY_PATH)
			},
			want: []check{path("/memfd:x (deleted)")}},
		{name: "mkdir mode",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "mkdirat", fdcwd, f.mem.str("d/"), 0o1777) },
			want: []check{path("/home/u/work/d"), kind(analyzer.KindCreate, accW), flagsMode(0, 0o1755)}},
		{name: "mknod keeps the type",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "mknod", f.mem.str("/tmp/fifo"), unix.S_IFIFO|0o666, 0)
			},
			want: []check{flagsMode(0, unix.S_IFIFO|0o644), kind(analyzer.KindCreate, accW)}},
		{name: "symlinkat",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "symlinkat", f.mem.str("../../etc/shadow"), 3, f.mem.str("sub/ln"))
			},
			want: []check{path("/srv/data/sub/ln"), path2("/srv/etc/shadow"), kind(analyzer.KindCreate, accW)}},
		{name: "symlink absolute target not rewritten",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "symlink", f.mem.str("/proc/self/root"), f.mem.str("/tmp/ln"))
			},
			want: []check{path("/tmp/ln"), path2("/proc/self/root")}},
		{name: "unlinkat",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "unlinkat", 3, f.mem.str("gone"), unix.AT_REMOVEDIR)
			},
			want: []check{path("/srv/data/gone"), kind(analyzer.KindDelete, accW), flagsMode(unix.AT_REMOVEDIR, 0)}},
		{name: "renameat2",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "renameat2", 3, f.mem.str("a"), fdcwd, f.mem.str("b"), unix.RENAME_EXCHANGE)
			},
			want: []check{path("/srv/data/a"), path2("/home/u/work/b"), kind(analyzer.KindRename, accW), flagsMode(unix.RENAME_EXCHANGE, 0)}},
		{name: "linkat AT_EMPTY_PATH",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "linkat", 3, f.mem.str(""), fdcwd, f.mem.str("l"), unix.AT_EMPTY_PATH)
			},
			want: []check{path("/srv/data"), path2("/home/u/work/l"), kind(analyzer.KindRename, accW)}},
		{name: "renameat2 empty old path",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "renameat2", 3, f.mem.str(""), fdcwd, f.mem.str("l"), unix.AT_EMPTY_PATH)
			},
			errno: unix.ENOENT},
		{name: "fchmodat2",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "fchmodat2", 3, f.mem.str(""), 0o104755, unix.AT_EMPTY_PATH)
			},
			want: []check{path("/srv/data"), kind(analyzer.KindAttr, accW), flagsMode(unix.AT_EMPTY_PATH, 0o4755)}},
		{name: "fchownat",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "fchownat", fdcwd, f.mem.str("o"), 0, 0, unix.AT_SYMLINK_NOFOLLOW)
			},
			want: []check{path("/home/u/work/o"), kind(analyzer.KindAttr, accW), flagsMode(unix.AT_SYMLINK_NOFOLLOW, 0)}},
		{name: "utimensat NULL path on a descriptor",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "utimensat", 3, 0, 0, 0) },
			want: []check{path("/srv/data"), kind(analyzer.KindAttr, accW)}},
		{name: "utimensat NULL path with AT_FDCWD is EFAULT",
			call:  func(f *fakeTarget) *kernel.Notif { return notif(t, "utimensat", fdcwd, 0, 0, 0) },
			errno: unix.EFAULT},
		{name: "truncate",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "truncate", f.mem.str("t"), 0) },
			want: []check{path("/home/u/work/t"), kind(analyzer.KindAttr, accW)}},
		{name: "chdir",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "chdir", f.mem.str("..")) },
			want: []check{path("/home/u"), kind(analyzer.KindChdir, accR)}},
		{name: "connect AF_INET",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "connect", 3, f.mem.alloc(sockaddrIn("10.1.2.3", 443)), 16)
			},
			want: []check{kind(analyzer.KindConnect, 0), addr(analyzer.SockAddr{Family: unix.AF_INET, Addr: addrPort("10.1.2.3:443")})}},
		{name: "connect AF_INET6 with scope",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "connect", 3, f.mem.alloc(sockaddrIn6("fe80::1", 22, 2)), 28)
			},
			want: []check{addr(analyzer.SockAddr{Family: unix.AF_INET6, Addr: addrPort("[fe80::1%2]:22")})}},
		{name: "connect AF_INET6 RFC 2133 length",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "connect", 3, f.mem.alloc(sockaddrIn6("::1", 80, 0)), 24)
			},
			want: []check{addr(analyzer.SockAddr{Family: unix.AF_INET6, Addr: addrPort("[::1]:80")})}},
		{name: "connect AF_INET too short",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "connect", 3, f.mem.alloc(sockaddrIn("10.1.2.3", 443)), 8)
			},
			errno: unix.EINVAL},
		{name: "connect length above sockaddr_storage",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "connect", 3, f.mem.alloc(make([]byte, 200)), 129)
			},
			errno: unix.EINVAL},
		{name: "connect negative length",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "connect", 3, f.mem.alloc(sockaddrIn("10.1.2.3", 443)), 0xffffffff)
			},
			errno: unix.EINVAL},
		{name: "connect unreadable address",
			call:  func(f *fakeTarget) *kernel.Notif { return notif(t, "connect", 3, 0, 16) },
			errno: unix.EFAULT},
		{name: "connect AF_UNIX relative path",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "connect", 3, f.mem.alloc(sockaddrUn("run/../s.sock\x00junk")), 2+18)
			},
			want: []check{addr(analyzer.SockAddr{Family: unix.AF_UNIX, Unix: "/home/u/work/s.sock"})}},
		{name: "connect AF_UNIX abstract",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "connect", 3, f.mem.alloc(sockaddrUn("\x00dbus\x00x")), 2+7)
			},
			want: []check{addr(analyzer.SockAddr{Family: unix.AF_UNIX, Unix: "dbus\x00x", Abstract: true})}},
		{name: "bind AF_UNIX unnamed",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "bind", 3, f.mem.alloc(sockaddrUn("")), 2) },
			want: []check{kind(analyzer.KindBind, 0), addr(analyzer.SockAddr{Family: unix.AF_UNIX, Unnamed: true})}},
		{name: "bind AF_NETLINK",
			call: func(f *fakeTarget) *kernel.Notif {
				b := make([]byte, 12)
				binary.NativeEndian.PutUint16(b, unix.AF_NETLINK)
				return notif(t, "bind", 3, f.mem.alloc(b), 12)
			},
			want: []check{addr(analyzer.SockAddr{Family: unix.AF_NETLINK})}},
		{name: "sendto with address",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "sendto", 3, 0, 0, unix.MSG_DONTWAIT, f.mem.alloc(sockaddrIn("8.8.8.8", 53)), 16)
			},
			want: []check{kind(analyzer.KindConnect, 0), addr(analyzer.SockAddr{Family: unix.AF_INET, Addr: addrPort("8.8.8.8:53")}), flagsMode(unix.MSG_DONTWAIT, 0)}},
		{name: "sendto AF_UNSPEC carries IPv4 fields",
			call: func(f *fakeTarget) *kernel.Notif {
				b := sockaddrIn("8.8.4.4", 53)
				b[0], b[1] = 0, 0
				return notif(t, "sendto", 3, 0, 0, 0, f.mem.alloc(b), 16)
			},
			want: []check{addr(analyzer.SockAddr{Family: unix.AF_UNSPEC, Addr: addrPort("8.8.4.4:53")})}},
		{name: "sendto without address",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "sendto", 3, 0, 0, 0, 0, 0) },
			want: []check{noAddr}},
		{name: "sendto NULL address ignores the length",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "sendto", 3, 0, 0, 0, 0, 0xffffffff) },
			want: []check{noAddr}},
		{name: "sendto negative length",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "sendto", 3, 0, 0, 0, f.mem.alloc(sockaddrIn("8.8.8.8", 53)), 0xffffffff)
			},
			errno: unix.EINVAL},
		{name: "sendto address with zero length",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "sendto", 3, 0, 0, 0, f.mem.alloc(sockaddrIn("8.8.8.8", 53)), 0)
			},
			want: []check{noAddr}},
		{name: "sendmsg msg_name",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "sendmsg", 3, f.mem.alloc(msghdr(f.mem.alloc(sockaddrIn6("2001:db8::1", 5353, 0)), 28)), 0)
			},
			want: []check{kind(analyzer.KindConnect, 0), addr(analyzer.SockAddr{Family: unix.AF_INET6, Addr: addrPort("[2001:db8::1]:5353")})}},
		{name: "sendmsg msg_namelen clamped",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "sendmsg", 3, f.mem.alloc(msghdr(f.mem.alloc(append(sockaddrIn("1.2.3.4", 1), make([]byte, 112)...)), 4096)), 0)
			},
			want: []check{addr(analyzer.SockAddr{Family: unix.AF_INET, Addr: addrPort("1.2.3.4:1")})}},
		{name: "sendmsg NULL msg_name",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "sendmsg", 3, f.mem.alloc(msghdr(0, 16)), 0) },
			want: []check{noAddr}},
		{name: "sendmsg unreadable msghdr",
			call:  func(f *fakeTarget) *kernel.Notif { return notif(t, "sendmsg", 3, 0x1000, 0) },
			errno: unix.EFAULT},
		{name: "sendmsg negative msg_namelen",
			call: func(f *fakeTarget) *kernel.Notif {
				return notif(t, "sendmsg", 3, f.mem.alloc(msghdr(f.mem.alloc(sockaddrIn("1.2.3.4", 1)), 0x80000000)), 0)
			},
			errno: unix.EINVAL},
		{name: "sendmmsg one address",
			call: func(f *fakeTarget) *kernel.Notif {
				a := f.mem.alloc(sockaddrIn("9.9.9.9", 53))
				vec := append(append(msghdr(0, 0), make([]byte, 8)...), append(msghdr(a, 16), make([]byte, 8)...)...)
				vec = append(vec, append(msghdr(a, 16), make([]byte, 8)...)...)
				return notif(t, "sendmmsg", 3, f.mem.alloc(vec), 3, 0)
			},
			want: []check{kind(analyzer.KindConnect, 0), addr(analyzer.SockAddr{Family: unix.AF_INET, Addr: addrPort("9.9.9.9:53")}), truncated(false)}},
		{name: "sendmmsg different addresses",
			call: func(f *fakeTarget) *kernel.Notif {
				a, b := f.mem.alloc(sockaddrIn("9.9.9.9", 53)), f.mem.alloc(sockaddrIn("6.6.6.6", 53))
				vec := append(append(msghdr(a, 16), make([]byte, 8)...), append(msghdr(b, 16), make([]byte, 8)...)...)
				return notif(t, "sendmmsg", 3, f.mem.alloc(vec), 2, 0)
			},
			want: []check{addr(analyzer.SockAddr{Family: unix.AF_INET, Addr: addrPort("9.9.9.9:53")}), truncated(true)}},
		{name: "sendmmsg vlen beyond the readable vector",
			call: func(f *fakeTarget) *kernel.Notif {
				a := f.mem.alloc(sockaddrIn("9.9.9.9", 53))
				return notif(t, "sendmmsg", 3, f.mem.allocEnd(append(msghdr(a, 16), make([]byte, 8)...)), 5, 0)
			},
			want: []check{addr(analyzer.SockAddr{Family: unix.AF_INET, Addr: addrPort("9.9.9.9:53")}), truncated(false)}},
		{name: "sendmmsg unreadable vector",
			call:  func(f *fakeTarget) *kernel.Notif { return notif(t, "sendmmsg", 3, 64, 2, 0) },
			errno: unix.EFAULT},
		{name: "sendmmsg no messages",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "sendmmsg", 3, 64, 0, 0) },
			want: []check{noAddr}},
		{name: "undecoded syscall",
			call: func(f *fakeTarget) *kernel.Notif { return notif(t, "getpid") },
			want: []check{kind(analyzer.KindOther, 0), path("")}},
		{name: "setuid forgets identity",
			call:   func(f *fakeTarget) *kernel.Notif { return notif(t, "setuid", 0) },
			checks: func(f *fakeTarget) []check { return []check{forgets(f)} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTarget()
			n := tc.call(f)
			c, err := decodeCall(f, n)
			if f.validates != 1 || f.unchecked != 0 {
				t.Fatalf("validate called %d times, %d reads after it", f.validates, f.unchecked)
			}
			if got := answerErrno(err); got != tc.errno || (tc.errno == 0) != (err == nil) {
				t.Fatalf("decodeCall error %v (answer %v), want answer %v", err, got, tc.errno)
			}
			if c.Nr != n.Data.Nr || c.Args != n.Data.Args || c.Arch != n.Data.Arch || c.Process != f.proc {
				t.Errorf("Nr, Args, Arch, Process not copied: %+v", c)
			}
			if name, _ := profiles.SyscallName(int(n.Data.Nr)); c.Name != name {
				t.Errorf("Name = %q, want %q", c.Name, name)
			}
			if err != nil {
				return
			}
			for _, chk := range tc.want {
				chk(t, c)
			}
			if tc.checks != nil {
				for _, chk := range tc.checks(f) {
					chk(t, c)
				}
			}
		})
	}
}

func TestDecodeGoneWins(t *testing.T) {
	// A read that failed because the thread died (EFAULT or ESRCH) is the
	// notification's disappearance, not the target's bad pointer.
	f := newFakeTarget()
	f.gone = true
	c, err := decodeCall(f, notif(t, "openat", fdcwd, 8, 0))
	if !errors.Is(err, kernel.ErrNotifGone) || answerErrno(err) != 0 {
		t.Fatalf("err = %v, want ErrNotifGone", err)
	}
	if !reflect.DeepEqual(c, analyzer.Call{}) {
		t.Errorf("call from a vanished notification: %+v", c)
	}
	f = newFakeTarget()
	f.gone = true
	if _, err := decodeCall(f, notif(t, "openat", fdcwd, f.mem.str("/ok"), 0)); !errors.Is(err, kernel.ErrNotifGone) {
		t.Fatalf("err = %v, want ErrNotifGone", err)
	}
}

func TestDecodeForeignArch(t *testing.T) {
	f := newFakeTarget()
	n := notif(t, "openat", fdcwd, f.mem.str("/x"), 0)
	n.Data.Arch = 0x40000003 // AUDIT_ARCH_I386
	if _, err := decodeCall(f, n); err == nil || answerErrno(err) != unix.EPERM {
		t.Fatalf("i386: err %v, want a fail-closed error", err)
	}
	n = notif(t, "openat", fdcwd, f.mem.str("/x"), 0)
	n.Data.Nr |= x32SyscallBit
	if _, err := decodeCall(f, n); err == nil || answerErrno(err) != unix.EPERM {
		t.Fatalf("x32: err %v, want a fail-closed error", err)
	}
}

func TestDecodeCwdUnreachable(t *testing.T) {
	f := newFakeTarget()
	f.cwdPath = "(unreachable)/jail"
	_, err := decodeCall(f, notif(t, "openat", fdcwd, f.mem.str("x"), 0))
	if err == nil || answerErrno(err) != unix.EPERM {
		t.Fatalf("err %v, want a fail-closed error", err)
	}
}

func TestNormalizePath(t *testing.T) {
	tests := []struct{ base, p, want string }{
		{"/a/b", "c", "/a/b/c"},
		{"/a/b", "../c", "/a/c"},
		{"/a/b", "../../../../c", "/c"},
		{"/a/b", "/x//y/./z/", "/x/y/z"},
		{"/a/b", ".", "/a/b"},
		{"/", "..", "/"},
		{"/a/", "./b/../c//", "/a/c"},
		{"a", "b", "/a/b"},
		{"", "b", "/b"},
		{"/a", "", "/a"},
		{"/", "//", "/"},
		{"/a", "...", "/a/..."},
	}
	for _, tc := range tests {
		if got := normalizePath(tc.base, tc.p); got != tc.want {
			t.Errorf("normalizePath(%q, %q) = %q, want %q", tc.base, tc.p, got, tc.want)
		}
	}
}

func TestRewriteProcSelf(t *testing.T) {
	tests := []struct{ p, want string }{
		{"/proc/self", "/proc/9"},
		{"/proc/self/fd/3", "/proc/9/fd/3"},
		{"/proc/thread-self", "/proc/9/task/10"},
		{"/proc/thread-self/fd", "/proc/9/task/10/fd"},
		{"/proc/selfie", "/proc/selfie"},
		{"/proc/1/self", "/proc/1/self"},
		{"/proc", "/proc"},
		{"/tmp/proc/self", "/tmp/proc/self"},
	}
	for _, tc := range tests {
		if got := rewriteProcSelf(tc.p, 9, 10); got != tc.want {
			t.Errorf("rewriteProcSelf(%q) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestParseSockaddr(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want analyzer.SockAddr
		err  bool
	}{
		{"empty", nil, analyzer.SockAddr{}, true},
		{"one byte", []byte{2}, analyzer.SockAddr{}, true},
		{"inet", sockaddrIn("127.0.0.1", 80), analyzer.SockAddr{Family: unix.AF_INET, Addr: addrPort("127.0.0.1:80")}, false},
		{"inet short", sockaddrIn("127.0.0.1", 80)[:15], analyzer.SockAddr{}, true},
		{"inet storage-sized", append(sockaddrIn("1.1.1.1", 1), make([]byte, 112)...), analyzer.SockAddr{Family: unix.AF_INET, Addr: addrPort("1.1.1.1:1")}, false},
		{"inet6", sockaddrIn6("::ffff:1.2.3.4", 8080, 0), analyzer.SockAddr{Family: unix.AF_INET6, Addr: addrPort("[::ffff:1.2.3.4]:8080")}, false},
		{"inet6 short", sockaddrIn6("::1", 1, 0)[:23], analyzer.SockAddr{}, true},
		{"unspec short", []byte{0, 0}, analyzer.SockAddr{Family: unix.AF_UNSPEC}, false},
		{"unix path", sockaddrUn("/run/x.sock"), analyzer.SockAddr{Family: unix.AF_UNIX, Unix: "/run/x.sock"}, false},
		{"unix path NUL-terminated", sockaddrUn("/run/x\x00garbage"), analyzer.SockAddr{Family: unix.AF_UNIX, Unix: "/run/x"}, false},
		{"unix abstract empty", sockaddrUn("\x00"), analyzer.SockAddr{Family: unix.AF_UNIX, Abstract: true}, false},
		{"unix unnamed", sockaddrUn(""), analyzer.SockAddr{Family: unix.AF_UNIX, Unnamed: true}, false},
		{"unix too long", sockaddrUn(strings.Repeat("a", 109)), analyzer.SockAddr{}, true},
		{"unix longest", sockaddrUn(strings.Repeat("a", 108)), analyzer.SockAddr{Family: unix.AF_UNIX, Unix: strings.Repeat("a", 108)}, false},
		{"packet", []byte{17, 0, 1, 2, 3}, analyzer.SockAddr{Family: unix.AF_PACKET}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSockaddr(tc.b)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if err != nil {
				if answerErrno(err) != unix.EINVAL {
					t.Errorf("answer %v, want EINVAL", answerErrno(err))
				}
				return
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAnswerErrno(t *testing.T) {
	tests := []struct {
		err  error
		want unix.Errno
	}{
		{nil, 0},
		{kernel.ErrNotifGone, 0},
		{&decodeError{Errno: unix.EFAULT, What: "x"}, unix.EFAULT},
		{readError(unix.EFAULT, "x"), unix.EFAULT},
		{readError(unix.ESRCH, "x"), unix.EPERM},
		{readError(unix.EPERM, "x"), unix.EPERM},
		{errors.New("anything"), unix.EPERM},
	}
	for _, tc := range tests {
		if got := answerErrno(tc.err); got != tc.want {
			t.Errorf("answerErrno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	line := "4242 (we ird) (name) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 200 18446744073709551615 94000 95000 140000 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, ok := parseProcStat([]byte(line))
	if !ok {
		t.Fatal("not parsed")
	}
	want := procStat{comm: "we ird) (name", ppid: 17, start: 987654, mm: [3]uint64{94000, 95000, 140000}}
	if st != want {
		t.Errorf("got %+v, want %+v", st, want)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S", "1 x) S 2", "1 (x) S notanumber 1"} {
		if _, ok := parseProcStat([]byte(bad)); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestCgroupPath(t *testing.T) {
	if got := cgroupPath([]byte("0::/user.slice/a.scope\n")); got != "/user.slice/a.scope" {
		t.Errorf("v2: %q", got)
	}
	if got := cgroupPath([]byte("12:pids:/x\n1:name=systemd:/y\n0::/z\n")); got != "/z" {
		t.Errorf("hybrid: %q", got)
	}
	if got := cgroupPath([]byte("12:pids:/x\n1:name=systemd:/y\n")); got != "12:pids:/x" {
		t.Errorf("v1: %q", got)
	}
}

func TestDecodeSpecsCoverAliases(t *testing.T) {
	// Every alias of a guarded call is decoded together (DESIGN.md,
	// Security model).
	for _, name := range []string{"open", "openat", "openat2", "creat", "execve", "execveat", "connect", "sendto",
		"sendmsg", "sendmmsg", "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
		"unlink", "unlinkat", "rmdir", "mkdir", "mkdirat", "mknod", "mknodat", "chmod", "fchmodat", "fchmodat2",
		"chown", "lchown", "fchownat", "stat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2",
		"readlink", "readlinkat", "truncate", "utimensat", "chdir", "bind"} {
		if s := callSpecs[nr(t, name)]; s.decode == nil {
			t.Errorf("%s is not decoded", name)
		}
	}
}
