package patterns

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

const home = "/home/u"

func builtin(t testing.TB) *Engine {
	t.Helper()
	e, err := Load(BuiltinFile, builtinTOML, Env{HOME: home})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// ev is one event of a test sequence.
type ev struct {
	at   time.Duration // since t0
	call *analyzer.Call
	// rules' view
	allowed bool // Verdict = ActionAllow (else ActionUnset: the default decided)
	denied  bool
	ret     int64
	retOK   bool
	tree    []int
}

func (x ev) event() Event {
	v := profiles.ActionUnset
	if x.allowed {
		v = profiles.ActionAllow
	}
	if x.denied {
		v = profiles.ActionErrno
	}
	return Event{Call: x.call, Time: t0.Add(x.at), Ret: x.ret, RetKnown: x.retOK, Verdict: v, Denied: x.denied, Tree: x.tree}
}

func process(pid int, exe string) analyzer.Process {
	return analyzer.Process{PID: pid, TID: pid, PPID: 1, Exe: exe, Comm: "x"}
}

func nr(name string) int32 {
	n, ok := profiles.SyscallNr(name)
	if !ok {
		panic(name)
	}
	return int32(n)
}

func sys(pid int, name string, args ...uint64) *analyzer.Call {
	c := &analyzer.Call{Nr: nr(name), Name: name, Process: process(pid, "/usr/bin/python3")}
	copy(c.Args[:], args)
	return c
}

func connectCall(pid, fd int, addr string) *analyzer.Call {
	c := sys(pid, "connect", uint64(fd))
	c.Kind = analyzer.KindConnect
	ap := netip.MustParseAddrPort(addr)
	fam := uint16(2)
	if ap.Addr().Is6() {
		fam = 10
	}
	c.Addr = &analyzer.SockAddr{Family: fam, Addr: ap}
	return c
}

func dup2(pid, oldfd, newfd int) *analyzer.Call {
	return sys(pid, "dup2", uint64(oldfd), uint64(newfd))
}

func execve(pid int, path string, argv ...string) *analyzer.Call {
	c := sys(pid, "execve")
	c.Kind, c.Access, c.Path, c.Argv = analyzer.KindExec, analyzer.AccessExec, path, argv
	return c
}

func execveat(pid, fd int, flags uint64, path string) *analyzer.Call {
	c := sys(pid, "execveat", uint64(fd), 0, 0, 0, flags)
	c.Kind, c.Access, c.Path, c.Flags = analyzer.KindExec, analyzer.AccessExec, path, flags
	return c
}

func openCall(pid int, path string, acc analyzer.Access) *analyzer.Call {
	c := sys(pid, "openat", uint64(0xffffff9c))
	c.Kind, c.Access, c.Path = analyzer.KindOpen, acc, path
	return c
}

func withExe(c *analyzer.Call, exe string) *analyzer.Call {
	c.Process.Exe = exe
	return c
}

// run feeds the events to e and returns the matches of the last one; it
// fails when an earlier event matches something.
func run(t *testing.T, e *Engine, evs []ev) []Match {
	t.Helper()
	var last []Match
	for i, x := range evs {
		ms := e.Observe(x.event())
		if i < len(evs)-1 && len(ms) > 0 {
			t.Fatalf("event %d (%s) matched early: %v", i, x.call.Name, names(ms))
		}
		last = ms
	}
	return last
}

func names(ms []Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Pattern)
	}
	return out
}

func equalNames(a, b []string) bool { return slices.Equal(a, b) || len(a) == 0 && len(b) == 0 }
