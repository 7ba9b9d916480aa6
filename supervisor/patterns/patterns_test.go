package patterns

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
)

const (
	evil = "203.0.113.5:4444"
	rd   = analyzer.AccessRead
	wr   = analyzer.AccessWrite
	rdwr = analyzer.AccessRead | analyzer.AccessWrite
	atEP = 0x1000
)

func TestBuiltinPatterns(t *testing.T) {
	curl := func(pid int, path string) *analyzer.Call {
		return withExe(openCall(pid, path, wr), "/usr/bin/curl")
	}
	tests := []struct {
		name string
		evs  []ev
		want []string
	}{
		// 1. reverse shell
		{"reverse shell", []ev{
			{0, connectCall(10, 3, evil), false, false, 0, false, nil},
			{time.Second, dup2(10, 3, 0), false, false, 0, false, nil},
			{time.Second, dup2(10, 3, 1), false, false, 0, false, nil},
			{2 * time.Second, execve(10, "/bin/sh", "sh", "-i"), false, false, 0, false, nil},
		}, []string{"reverse-shell"}},
		{"reverse shell dup3 ipv6", []ev{
			{at: 0, call: connectCall(10, 7, "[2001:db8::1]:443")},
			{at: time.Second, call: sys(10, "dup3", 7, 2, 0)},
			{at: time.Second, call: execve(10, "/usr/local/bin/zsh")},
		}, []string{"reverse-shell"}},
		{"reverse shell exec in child", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: dup2(10, 3, 0)},
			{at: 2 * time.Second, call: execve(11, "/usr/bin/bash"), tree: []int{10, 1}},
		}, []string{"reverse-shell"}},
		{"reverse shell dup and exec in grandchild", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: dup2(12, 3, 1), tree: []int{11, 10}},
			{at: 2 * time.Second, call: execve(12, "/bin/dash"), tree: []int{11, 10}},
		}, []string{"reverse-shell"}},
		{"reverse shell high bits of fd ignored", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: sys(10, "dup2", 3|1<<32, 0|7<<40)},
			{at: time.Second, call: execve(10, "/bin/sh")},
		}, []string{"reverse-shell"}},
		{"reverse shell second of two sockets", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: 0, call: connectCall(10, 4, "198.51.100.9:80")},
			{at: time.Second, call: dup2(10, 3, 0)},
			{at: time.Second, call: execve(10, "/bin/sh")},
		}, []string{"reverse-shell"}},
		{"reverse shell wrong fd", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: dup2(10, 4, 0)},
			{at: 2 * time.Second, call: execve(10, "/bin/sh")},
		}, nil},
		{"reverse shell newfd not stdio", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: dup2(10, 3, 5)},
			{at: 2 * time.Second, call: execve(10, "/bin/sh")},
		}, nil},
		{"reverse shell out of order", []ev{
			{at: 0, call: dup2(10, 3, 0)},
			{at: time.Second, call: connectCall(10, 3, evil)},
			{at: 2 * time.Second, call: execve(10, "/bin/sh")},
		}, nil},
		{"reverse shell exec before dup", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: execve(10, "/bin/sh")},
			{at: 2 * time.Second, call: dup2(10, 3, 0)},
		}, nil},
		{"reverse shell outside window", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: dup2(10, 3, 0)},
			{at: 61 * time.Second, call: execve(10, "/bin/sh")},
		}, nil},
		{"reverse shell at window edge", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: dup2(10, 3, 0)},
			{at: 60 * time.Second, call: execve(10, "/bin/sh")},
		}, []string{"reverse-shell"}},
		{"reverse shell allowed address", []ev{
			{at: 0, call: connectCall(10, 3, "127.0.0.1:5432"), allowed: true},
			{at: time.Second, call: dup2(10, 3, 0)},
			{at: 2 * time.Second, call: execve(10, "/bin/sh")},
		}, nil},
		{"reverse shell exec in unrelated process", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: dup2(10, 3, 0)},
			{at: 2 * time.Second, call: execve(12, "/bin/sh"), tree: []int{9, 1}},
		}, nil},
		{"reverse shell exec in parent", []ev{
			{at: 0, call: connectCall(11, 3, evil), tree: []int{10}},
			{at: time.Second, call: dup2(11, 3, 0), tree: []int{10}},
			{at: 2 * time.Second, call: execve(10, "/bin/sh")},
		}, nil},
		{"reverse shell not a shell", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: dup2(10, 3, 0)},
			{at: 2 * time.Second, call: execve(10, "/usr/bin/ssh")},
		}, nil},

		// 2. credential access
		{"ssh key", []ev{{call: openCall(10, home+"/.ssh/id_ed25519", rd)}}, []string{"credential-access"}},
		{"aws of another user", []ev{{call: openCall(10, "/home/v/.aws/credentials", rdwr)}}, []string{"credential-access"}},
		{"shadow", []ev{{call: openCall(10, "/etc/shadow", 0)}}, []string{"credential-access"}},
		{"ssh key by ssh", []ev{{call: withExe(openCall(10, home+"/.ssh/id_rsa", rd), "/usr/bin/ssh")}}, nil},
		{"ssh dir write only", []ev{{call: openCall(10, home+"/.ssh/known_hosts", wr)}}, nil},
		{"passwd", []ev{{call: openCall(10, "/etc/passwd", rd)}}, nil},
		{"environ of another process", []ev{{call: openCall(10, "/proc/123/environ", rd)}}, []string{"credential-access-proc"}},
		{"mem of another thread", []ev{{call: openCall(10, "/proc/123/task/124/mem", rdwr)}}, []string{"credential-access-proc"}},
		{"own environ by self", []ev{{call: openCall(10, "/proc/self/environ", rd)}}, nil},
		{"own environ by pid", []ev{{call: openCall(10, "/proc/10/environ", rd)}}, nil},
		{"own environ by thread-self", []ev{{call: openCall(10, "/proc/thread-self/environ", rd)}}, nil},
		{"own mem by tid", []ev{{call: func() *analyzer.Call { c := openCall(10, "/proc/12/mem", rd); c.Process.TID = 12; return c }()}}, nil},
		{"other process stat", []ev{{call: openCall(10, "/proc/123/stat", rd)}}, nil},

		// 3. download and execute
		{"download exec", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: openCall(10, "/tmp/x", wr)},
			{at: 5 * time.Minute, call: execve(11, "/tmp/x"), tree: []int{10}},
		}, []string{"download-exec"}},
		{"download exec by writer", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: openCall(10, "/tmp/a", wr)},
			{at: time.Second, call: openCall(10, "/tmp/x", wr)},
			{at: time.Second, call: openCall(10, "/tmp/b", wr)},
			{at: 2 * time.Second, call: execve(10, "/tmp/x")},
		}, []string{"download-exec"}},
		{"download exec other path", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: openCall(10, "/tmp/x", wr)},
			{at: 2 * time.Second, call: execve(10, "/tmp/y")},
		}, nil},
		{"download exec written by a child", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: openCall(11, "/tmp/x", wr), tree: []int{10}},
			{at: 2 * time.Second, call: execve(11, "/tmp/x"), tree: []int{10}},
		}, nil},
		{"build and run", []ev{
			{at: 0, call: openCall(10, "/tmp/go-build1/b001/exe/a.out", wr)},
			{at: time.Second, call: execve(10, "/tmp/go-build1/b001/exe/a.out")},
		}, nil},
		{"download exec allowed fetch", []ev{
			{at: 0, call: connectCall(10, 3, "10.0.0.1:3128"), allowed: true},
			{at: time.Second, call: openCall(10, "/tmp/x", wr)},
			{at: 2 * time.Second, call: execve(10, "/tmp/x")},
		}, nil},
		{"download exec outside window", []ev{
			{at: 0, call: connectCall(10, 3, evil)},
			{at: time.Second, call: openCall(10, "/tmp/x", wr)},
			{at: 11 * time.Minute, call: execve(10, "/tmp/x")},
		}, nil},
		{"curl then sibling runs it", []ev{
			{at: 0, call: curl(20, "/tmp/payload"), tree: []int{19}},
			{at: 3 * time.Second, call: execve(21, "/tmp/payload"), tree: []int{19}},
		}, []string{"downloader-exec"}},
		{"curl writes, other file run", []ev{
			{at: 0, call: curl(20, "/tmp/payload"), tree: []int{19}},
			{at: 3 * time.Second, call: execve(21, "/tmp/other"), tree: []int{19}},
		}, nil},
		{"memfd exec", []ev{
			{at: 0, call: sys(10, "memfd_create"), ret: 5, retOK: true},
			{at: time.Second, call: execveat(10, 5, atEP, "/memfd:x (deleted)")},
		}, []string{"memfd-exec", "fileless-exec"}},
		{"memfd exec wrong fd", []ev{
			{at: 0, call: sys(10, "memfd_create"), ret: 5, retOK: true},
			{at: time.Second, call: execveat(10, 6, atEP, "/tmp/f")},
		}, nil},
		{"memfd exec without AT_EMPTY_PATH", []ev{
			{at: 0, call: sys(10, "memfd_create"), ret: 5, retOK: true},
			{at: time.Second, call: execveat(10, 5, 0, "/tmp/f")},
		}, nil},
		{"memfd result unknown", []ev{
			{at: 0, call: sys(10, "memfd_create")},
			{at: time.Second, call: execveat(10, 5, atEP, "/tmp/f")},
		}, nil},
		{"memfd exec by path only", []ev{
			{at: time.Second, call: execveat(10, 9, atEP, "/memfd:payload (deleted)")},
		}, []string{"fileless-exec"}},
		{"proc fd exec", []ev{{call: execve(10, "/proc/self/fd/3")}}, []string{"fileless-exec"}},

		// 4. privilege probing
		{"privilege probe", probe(10, 5, time.Second, true, "ptrace", "mount", "init_module", "setuid", "unshare"), []string{"privilege-probe"}},
		{"privilege probe four", probe(10, 4, time.Second, true, "ptrace"), nil},
		{"privilege probe too slow", probe(10, 5, 3*time.Second, true, "bpf"), nil},
		{"privilege probe allowed", probe(10, 5, time.Second, false, "setns"), nil},
		{"privilege probe chown", probe(10, 5, time.Second, true, "chown"), nil},
		{"privilege probe two processes", func() []ev {
			evs := probe(10, 5, time.Second, true, "keyctl")
			evs[4].call.Process = process(11, "/usr/bin/python3")
			return evs
		}(), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := builtin(t)
			got := run(t, e, tc.evs)
			if !equalNames(names(got), tc.want) {
				t.Fatalf("matches %v, want %v", names(got), tc.want)
			}
			for _, m := range got {
				if len(m.Steps) != len(e.patterns[e.order(m.Pattern)].steps) || m.Risk <= 0 || m.Verdict == profiles.ActionUnset {
					t.Errorf("match %+v", m)
				}
			}
		})
	}
}

// probe makes n calls (cycling through names) every step.
func probe(pid, n int, every time.Duration, denied bool, names ...string) []ev {
	var evs []ev
	for i := range n {
		evs = append(evs, ev{at: time.Duration(i) * every, call: sys(pid, names[i%len(names)]), denied: denied})
	}
	return evs
}

func TestMatchDetails(t *testing.T) {
	e := builtin(t)
	run(t, e, []ev{
		{at: 0, call: connectCall(10, 3, evil)},
		{at: time.Second, call: dup2(10, 3, 0)},
	})
	ms := e.Observe(ev{at: 2 * time.Second, call: execve(11, "/bin/sh"), tree: []int{10}}.event())
	want := []Match{{Pattern: "reverse-shell", Risk: 0.95, Verdict: profiles.ActionKill, Steps: []string{
		`connect: pid 10 connect 203.0.113.5:4444`,
		`dup-to-stdio: pid 10 dup2(3, 0, 0)`,
		`exec-shell: pid 11 execve "/bin/sh"`,
	}}}
	if !reflect.DeepEqual(ms, want) {
		t.Fatalf("got  %#v\nwant %#v", ms, want)
	}
	// The completed match is consumed, the dup2 state stays: another shell
	// matches again (the first step's state too).
	if ms := e.Observe(ev{at: 3 * time.Second, call: execve(10, "/bin/bash")}.event()); len(ms) != 0 {
		t.Fatalf("consumed match matched again: %v", names(ms))
	}
	// Counting: the sixth denied call in the window matches again.
	e = builtin(t)
	var n int
	for i := range 7 {
		ms := e.Observe(ev{at: time.Duration(i) * time.Second, call: sys(10, "mount"), denied: true}.event())
		n += len(ms)
		if i == 4 && (len(ms) != 1 || !strings.Contains(ms[0].Steps[0], "×5 in 4.000s")) {
			t.Fatalf("5th: %#v", ms)
		}
	}
	if n != 3 {
		t.Errorf("%d matches for 7 denied calls, want 3", n)
	}
}

func TestForget(t *testing.T) {
	e := builtin(t)
	run(t, e, []ev{
		{at: 0, call: connectCall(10, 3, evil)},
		{at: time.Second, call: dup2(10, 3, 0)},
	})
	if e.States() == 0 {
		t.Fatal("no state")
	}
	e.Forget(10)
	if n := e.States(); n != 0 {
		t.Fatalf("%d states after Forget", n)
	}
	if ms := e.Observe(ev{at: 2 * time.Second, call: execve(10, "/bin/sh")}.event()); len(ms) != 0 {
		t.Fatalf("matched after Forget: %v", names(ms))
	}
	e.Forget(10) // idempotent
	e.Forget(999)
	// Sandbox-scope partial matches survive the downloader's exit.
	e.Observe(ev{call: withExe(openCall(20, "/tmp/p", wr), "/usr/bin/wget")}.event())
	e.Forget(20)
	if ms := e.Observe(ev{at: time.Second, call: execve(21, "/tmp/p")}.event()); !equalNames(names(ms), []string{"downloader-exec"}) {
		t.Fatalf("got %v", names(ms))
	}
}

func TestBoundedState(t *testing.T) {
	t.Run("one process", func(t *testing.T) {
		e := builtin(t)
		for i := range 10000 {
			e.Observe(ev{at: time.Duration(i) * time.Millisecond, call: connectCall(10, 100+i, evil)}.event())
		}
		// reverse-shell and download-exec each start one per connect.
		if n := e.States(); n > 2*e.lim.PerPattern {
			t.Fatalf("%d states, want <= %d", n, 2*e.lim.PerPattern)
		}
		// The newest are kept, the oldest evicted.
		if ms := run(t, e, []ev{{at: 11 * time.Second, call: dup2(10, 100, 0)}, {at: 11 * time.Second, call: execve(10, "/bin/sh")}}); len(ms) != 0 {
			t.Errorf("evicted state matched: %v", names(ms))
		}
		if ms := run(t, e, []ev{{at: 11 * time.Second, call: dup2(10, 100+9999, 0)}, {at: 11 * time.Second, call: execve(10, "/bin/sh")}}); len(ms) != 1 {
			t.Errorf("newest state: %v", names(ms))
		}
	})
	t.Run("many processes", func(t *testing.T) {
		e := builtin(t)
		e.SetLimits(Limits{Total: 500})
		for i := range 20000 {
			pid := 100 + i
			e.Observe(ev{at: time.Duration(i) * time.Millisecond, call: connectCall(pid, 3, evil)}.event())
			e.Observe(ev{at: time.Duration(i) * time.Millisecond, call: dup2(pid, 3, 1)}.event())
			e.Observe(ev{at: time.Duration(i) * time.Millisecond, call: sys(pid, "ptrace"), denied: true}.event())
			if n := e.States(); n > 500 {
				t.Fatalf("%d states", n)
			}
		}
		if n := len(e.procs); n > 500 {
			t.Fatalf("%d processes tracked", n)
		}
		checkInvariants(t, e)
	})
	t.Run("per process limit", func(t *testing.T) {
		e := builtin(t)
		e.SetLimits(Limits{PerPattern: 100, PerProcess: 10})
		for i := range 1000 {
			e.Observe(ev{at: time.Duration(i), call: connectCall(10, 3+i, evil)}.event())
			e.Observe(ev{at: time.Duration(i), call: openCall(10, fmt.Sprintf("/tmp/f%d", i), wr)}.event())
		}
		if n := len(e.procs[10].states); n > 10 {
			t.Fatalf("%d states", n)
		}
		checkInvariants(t, e)
	})
	t.Run("duplicates collapse", func(t *testing.T) {
		e := builtin(t)
		for i := range 1000 {
			e.Observe(ev{at: time.Duration(i), call: connectCall(10, 3, evil)}.event())
			e.Observe(ev{at: time.Duration(i), call: dup2(10, 3, i%3)}.event())
		}
		// reverse-shell: step-1 states are not deduplicated by time (each
		// connect is a new socket), but capped; step-2 states collapse.
		if n := e.States(); n > 3*e.lim.PerPattern {
			t.Fatalf("%d states", n)
		}
		checkInvariants(t, e)
	})
}

// checkInvariants compares the global list with the per-process lists.
func checkInvariants(t *testing.T, e *Engine) {
	t.Helper()
	n := 0
	for x := e.head; x != nil; x = x.next {
		n++
		if pr := e.procs[x.owner]; pr == nil || !containsState(pr.states, x) {
			t.Fatalf("state of %d not in its process", x.owner)
		}
	}
	m := 0
	for _, pr := range e.procs {
		if len(pr.states) == 0 {
			t.Fatal("empty process kept")
		}
		m += len(pr.states)
	}
	if n != e.total || m != e.total {
		t.Fatalf("list %d, processes %d, total %d", n, m, e.total)
	}
}

func containsState(l []*state, x *state) bool {
	for _, y := range l {
		if y == x {
			return true
		}
	}
	return false
}

func TestDeterministic(t *testing.T) {
	seq := func() []string {
		e := builtin(t)
		var out []string
		for i := range 3000 {
			pid := 10 + i%7
			var c *analyzer.Call
			switch i % 5 {
			case 0:
				c = connectCall(pid, 3+i%4, evil)
			case 1:
				c = dup2(pid, 3+i%5, i%4)
			case 2:
				c = execve(pid, []string{"/bin/sh", "/tmp/x", "/usr/bin/ls"}[i%3])
			case 3:
				c = openCall(pid, "/tmp/x", wr)
			case 4:
				c = sys(pid, "ptrace")
			}
			for _, m := range e.Observe(ev{at: time.Duration(i) * 100 * time.Millisecond, call: c, denied: i%2 == 0, tree: []int{10 + (i+1)%7}}.event()) {
				out = append(out, fmt.Sprint(i, m.Pattern, m.Steps))
			}
		}
		return out
	}
	a, b := seq(), seq()
	if len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Fatalf("runs differ or match nothing: %d vs %d", len(a), len(b))
	}
}

func TestNoAllocs(t *testing.T) {
	e := builtin(t)
	evs := []Event{
		ev{call: openCall(10, "/usr/lib/libc.so.6", rd)}.event(),
		ev{call: openCall(10, "/tmp/out.o", wr)}.event(), // a write with no connect before
		ev{call: execve(10, "/usr/bin/ls")}.event(),
		ev{call: connectCall(10, 3, "127.0.0.1:80"), allowed: true}.event(),
		ev{call: sys(10, "getdents64")}.event(),
		ev{call: sys(10, "dup2", 3, 1)}.event(),
	}
	for _, x := range evs {
		if n := testing.AllocsPerRun(100, func() { e.Observe(x) }); n != 0 {
			t.Errorf("%s %q: %v allocs", x.Call.Name, x.Call.Path, n)
		}
	}
}

func TestConcurrent(t *testing.T) {
	e := builtin(t)
	done := make(chan bool)
	for g := range 4 {
		go func() {
			for i := range 2000 {
				pid := 100*g + i%10
				e.Observe(ev{at: time.Duration(i), call: connectCall(pid, 3, evil)}.event())
				e.Observe(ev{at: time.Duration(i), call: dup2(pid, 3, 0)}.event())
				e.Observe(ev{at: time.Duration(i), call: execve(pid, "/bin/sh")}.event())
				if i%100 == 0 {
					e.Forget(pid)
				}
			}
			done <- true
		}()
	}
	for range 4 {
		<-done
	}
	checkInvariants(t, e)
}

func TestBuiltin(t *testing.T) {
	e := Builtin(Env{HOME: home})
	infos := e.Patterns()
	want := []string{"reverse-shell", "credential-access", "credential-access-proc", "download-exec", "downloader-exec", "memfd-exec", "fileless-exec", "privilege-probe"}
	var got []string
	for _, in := range infos {
		got = append(got, in.Name)
		if in.Description == "" || in.Pos.Line == 0 {
			t.Errorf("%s: %+v", in.Name, in)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("patterns %v", got)
	}
	// Without HOME the ${HOME} globs are left out, the rest still works.
	e = Builtin(Env{})
	for path, want := range map[string]bool{"/home/u/.ssh/id_rsa": true, "/root/.aws/credentials": true, "/srv/u/.ssh/id_rsa": false} {
		ms := e.Observe(ev{call: openCall(10, path, rd)}.event())
		if (len(ms) == 1) != want {
			t.Errorf("%s: %v", path, names(ms))
		}
	}
	sc := e.Syscalls()
	for _, n := range []string{"connect", "dup2", "dup3", "execve", "execveat", "openat", "memfd_create", "ptrace", "mount"} {
		if !containsString(sc, n) {
			t.Errorf("Syscalls() lacks %s", n)
		}
	}
	if containsString(sc, "chown") {
		t.Error("Syscalls() has chown")
	}
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
