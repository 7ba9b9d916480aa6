package supervisor

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
)

func statsTestLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func fakeSnapshot() Snapshot {
	return Snapshot{
		Profile:       "web",
		Mode:          "enforce",
		Received:      10,
		Answered:      7,
		Vanished:      1,
		Verdicts:      map[string]uint64{"allow": 6, "deny": 4},
		Sources:       map[string]uint64{"cache": 3, "rule": 7},
		CacheHits:     3,
		CacheMisses:   1,
		CacheCapacity: 4096,
		DecisionP50NS: 4000,
		DecisionP99NS: 20000,
		DecisionCount: 10,
		DecisionSumNS: 65000,
		Decisions:     []DecisionCount{{Source: "rule", Verdict: "deny", Count: 4}, {Source: "cache", Verdict: "allow", Count: 3}, {Source: "rule", Verdict: "allow", Count: 3}},
		Busiest:       []ProcCount{{Comm: "curl", Count: 8}, {Comm: "sh", Count: 2}},
		Recent:        []Denial{{Time: time.Unix(1700000000, 0).UTC(), PID: 42, Comm: "curl", Syscall: "connect", Verdict: "deny", Errno: "EPERM", Rule: "web.toml:14:3 (syscalls.deny)"}},
		RulesActive:   12,
		RulesVersion:  3,
	}
}

// ask sends one command line and decodes the answer.
func ask(t *testing.T, path, cmd string) Status {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, cmd); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(cmd, "\n") {
		c.(*net.UnixConn).CloseWrite() // the line ends at EOF
	}
	var st Status
	if err := json.NewDecoder(c).Decode(&st); err != nil {
		t.Fatalf("decode answer to %q: %v", cmd, err)
	}
	return st
}

func TestControlRoundTrip(t *testing.T) {
	// The socket must be 0600 whatever the umask.
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	dir := t.TempDir()
	path := filepath.Join(dir, "4242.sock")
	var calls atomic.Int32
	srv, err := ServeControl(path, func() Snapshot { calls.Add(1); return fakeSnapshot() }, statsTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want socket 0600", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the socket (private bind directory left behind?)", len(entries))
	}

	for _, cmd := range []string{"stats\n", "stats json\n", "  stats   json \r\n", "stats json"} {
		st := ask(t, path, cmd)
		want := fakeSnapshot()
		if st.Error != "" {
			t.Fatalf("%q: error %q", cmd, st.Error)
		}
		if st.Profile != want.Profile || st.Received != want.Received || st.RulesActive != 12 || st.RulesVersion != 3 {
			t.Errorf("%q: snapshot fields lost: %+v", cmd, st.Snapshot)
		}
		if st.QueueDepth != 2 || st.CacheHitRate != 0.75 || st.PID != os.Getpid() {
			t.Errorf("%q: queue %d, hit rate %v, pid %d; want 2, 0.75, %d", cmd, st.QueueDepth, st.CacheHitRate, st.PID, os.Getpid())
		}
		if len(st.Busiest) != 2 || st.Busiest[0].Comm != "curl" || len(st.Recent) != 1 || st.Recent[0].Syscall != "connect" || !st.Recent[0].Time.Equal(want.Recent[0].Time) {
			t.Errorf("%q: busiest %+v, recent %+v", cmd, st.Busiest, st.Recent)
		}
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("snap called %d times, want 4", n)
	}

	if st := ask(t, path, "reload\n"); !strings.Contains(st.Error, `unknown command "reload"`) {
		t.Errorf("unknown command: error %q", st.Error)
	}

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestControlJSONFieldNames(t *testing.T) {
	b, err := json.Marshal(newStatus(fakeSnapshot(), time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	// A stable interface: these names may gain company, never change.
	for _, k := range []string{
		"profile", "mode", "notifications_received", "notifications_answered", "notifications_vanished",
		"verdicts", "sources", "cache_hits", "cache_misses", "cache_evictions", "cache_capacity",
		"decision_p50_ns", "decision_p99_ns", "decision_count", "decision_sum_ns", "decisions",
		"busiest", "recent_denials", "rules_active", "rules_version",
		"pid", "uptime_ns", "queue_depth", "cache_hit_rate", "targets",
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing from %s", k, b)
		}
	}
	if _, ok := m["error"]; ok {
		t.Errorf("error field present without an error")
	}
}

func TestControlExistingPath(t *testing.T) {
	dir := t.TempDir()
	snap := func() Snapshot { return fakeSnapshot() }

	t.Run("stale socket is replaced", func(t *testing.T) {
		path := filepath.Join(dir, "stale.sock")
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close()
		srv, err := ServeControl(path, snap, statsTestLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		if st := ask(t, path, "stats\n"); st.Profile != "web" {
			t.Errorf("answer %+v", st)
		}
	})
	t.Run("live socket is refused", func(t *testing.T) {
		path := filepath.Join(dir, "live.sock")
		srv, err := ServeControl(path, snap, statsTestLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		if _, err := ServeControl(path, snap, statsTestLogger(t)); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Fatalf("second server on a live socket: %v", err)
		}
		if st := ask(t, path, "stats\n"); st.Profile != "web" {
			t.Errorf("first server disturbed: %+v", st)
		}
	})
	t.Run("other file is kept", func(t *testing.T) {
		path := filepath.Join(dir, "file.sock")
		if err := os.WriteFile(path, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ServeControl(path, snap, statsTestLogger(t)); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("ServeControl over a regular file: %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "keep" {
			t.Errorf("file clobbered: %q", b)
		}
	})
	t.Run("Close leaves a successor's socket", func(t *testing.T) {
		path := filepath.Join(dir, "succ.sock")
		srv, err := ServeControl(path, snap, statsTestLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		// Someone removed ours and serves at the same path.
		os.Remove(path)
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		srv.Close()
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("Close removed a socket that was not ours: %v", err)
		}
	})
	t.Run("path too long", func(t *testing.T) {
		path := filepath.Join(dir, strings.Repeat("x", sunPathMax)+".sock")
		if _, err := ServeControl(path, snap, statsTestLogger(t)); err == nil || !strings.Contains(err.Error(), "too long") {
			t.Fatalf("long path: %v", err)
		}
	})
}

func TestSweepStale(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "5.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	live := filepath.Join(dir, "6.sock")
	srv, err := ServeControl(live, func() Snapshot { return fakeSnapshot() }, statsTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	file := filepath.Join(dir, "7.sock")
	os.WriteFile(file, nil, 0o600)
	other := filepath.Join(dir, "other.sock")
	ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: other, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	sweepStale(dir)
	if _, err := os.Lstat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale socket kept: %v", err)
	}
	for _, p := range []string{live, file, other} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(p), err)
		}
	}
}

func TestEnsurePrivateDir(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "fresh")
	if err := ensurePrivateDir(fresh); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o700 {
		t.Errorf("created with %v, want 0700", fi.Mode().Perm())
	}
	if err := ensurePrivateDir(fresh); err != nil {
		t.Errorf("existing private dir: %v", err)
	}
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	if err := ensurePrivateDir(open); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("world-writable dir: %v", err)
	}
	link := filepath.Join(base, "link")
	os.Symlink(fresh, link)
	if err := ensurePrivateDir(link); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("symlink: %v", err)
	}
}

func TestDefaultControlPath(t *testing.T) {
	if os.Geteuid() == 0 {
		if got := DefaultControlPath(7); got != "/run/archangel/7.sock" {
			t.Errorf("root: %s", got)
		}
	} else {
		t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
		if got := DefaultControlPath(7); got != "/run/user/1000/archangel/7.sock" {
			t.Errorf("user: %s", got)
		}
	}
	for name, want := range map[string]int{"7.sock": 7, "/x/123.sock": 123, "07.sock": 0, "x.sock": 0, "7": 0, "-1.sock": 0, ".sock": 0} {
		pid, ok := ParseControlPath(name)
		if ok != (want != 0) || ok && pid != want {
			t.Errorf("ParseControlPath(%q) = %d, %v; want %d (0: not a control socket name)", name, pid, ok, want)
		}
	}
}

func TestPeerAllowed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		peer      *unix.Ucred
		self      int
		wantAllow bool
	}{
		{"same user", &unix.Ucred{Uid: 1000}, 1000, true},
		{"root reads a user's supervisor", &unix.Ucred{Uid: 0}, 1000, true},
		{"root reads root's", &unix.Ucred{Uid: 0}, 0, true},
		{"other user", &unix.Ucred{Uid: 1001}, 1000, false},
		{"user reads root's", &unix.Ucred{Uid: 1000}, 0, false},
		{"overflow uid is not root", &unix.Ucred{Uid: 65534}, 0, false},
		{"no credentials", nil, 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := peerAllowed(tc.peer, tc.self); got != tc.wantAllow {
				t.Errorf("peerAllowed(%+v, %d) = %v", tc.peer, tc.self, got)
			}
		})
	}
}

// TestControlRejectsOtherUIDAsRoot connects as another user for real: the
// file permissions are opened up so that only the SO_PEERCRED check stands.
func TestControlRejectsOtherUIDAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: connects as uid 65534 with setresuid on one thread")
	}
	dir, err := os.MkdirTemp("", "archangel-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "1.sock")
	srv, err := ServeControl(path, func() Snapshot { return fakeSnapshot() }, statsTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	os.Chmod(dir, 0o755)
	os.Chmod(path, 0o666)

	type result struct {
		fd  int
		err error
	}
	done := make(chan result)
	go func() {
		// This thread alone changes its effective uid (a raw setresuid,
		// not syscall.Setuid, which changes every thread) and is never
		// unlocked: the runtime discards it when the goroutine ends.
		runtime.LockOSThread()
		const keep = ^uintptr(0)
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, keep, 65534, keep); e != 0 {
			done <- result{-1, e}
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			if err = unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
				unix.Close(fd)
			}
		}
		done <- result{fd, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("connect as uid 65534: %v", r.err)
	}
	f := os.NewFile(uintptr(r.fd), "peer")
	defer f.Close()
	f.SetDeadline(time.Now().Add(5 * time.Second))
	f.WriteString("stats json\n")
	var st Status
	if err := json.NewDecoder(f).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.Error, "permission denied: uid 65534") || st.Profile != "" {
		t.Errorf("another user got %+v", st)
	}
}

func TestCountDescendants(t *testing.T) {
	if n := countDescendants(1 << 30); n != 0 {
		t.Errorf("no such process: %d descendants", n)
	}
	// sh with two sleeps below it, plus a sleep started directly: three
	// levels, and children of several of this process's threads.
	sh := exec.Command("sh", "-c", "sleep 30 & sleep 30 & wait")
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	leaf := exec.Command("sleep", "30")
	if err := leaf.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-sh.Process.Pid, syscall.SIGKILL)
		_ = leaf.Process.Kill()
		_ = sh.Wait()
		_ = leaf.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for countDescendants(sh.Process.Pid) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("sh has %d descendants, want its 2 sleeps", countDescendants(sh.Process.Pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := countDescendants(leaf.Process.Pid); n != 0 {
		t.Errorf("leaf sleep has %d descendants", n)
	}
	if n := countDescendants(os.Getpid()); n < 4 {
		t.Errorf("test process has %d descendants, want at least sh, 2 sleeps below it and the leaf", n)
	}
}

func TestStartServers(t *testing.T) {
	dir := t.TempDir()
	snap := func() Snapshot { return fakeSnapshot() }

	// An unusable control socket degrades; an unusable metrics address fails.
	servers, err := startServers(filepath.Join(dir, "missing", "x.sock"), "", snap, statsTestLogger(t))
	if err != nil || len(servers) != 0 {
		t.Errorf("bad control path: %v, %d servers; want a warning only", err, len(servers))
	}
	path := filepath.Join(dir, "ok.sock")
	if _, err := startServers(path, ":1", snap, statsTestLogger(t)); err == nil {
		t.Error("metrics on every interface by accident: no error")
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("control socket left behind after the metrics failure: %v", err)
	}
	servers, err = startServers(path, "127.0.0.1:0", snap, statsTestLogger(t))
	if err != nil || len(servers) != 2 {
		t.Fatalf("startServers: %v, %d servers", err, len(servers))
	}
	closeAll(servers)
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("control socket left behind: %v", err)
	}
}

func TestLiveStats(t *testing.T) {
	s := newStats("web", profiles.ModeEnforce)
	s.SetRules(12, 3)
	self := uint32(os.Getpid())
	comm := procComm(self)
	allow := decision{action: profiles.ActionAllow, source: SourceRule, layer: SourceRule}
	cached := decision{action: profiles.ActionAllow, source: SourceCache, layer: SourceRule}
	deny := decision{action: profiles.ActionErrno, errno: 1, source: SourceRule, layer: SourceRule, rule: "syscalls.deny", pos: profiles.Pos{File: "web.toml", Line: 14, Col: 3}}
	n := func(nr int32) *kernel.Notif { return &kernel.Notif{PID: self, Data: kernel.SeccompData{Nr: nr}} }

	for range 5 {
		s.count(allow, n(0))
	}
	s.count(cached, n(0))
	for i := range recentDenials + 5 {
		s.count(deny, n(int32(i)))
	}
	s.count(allow, n(nrExecve))
	snap := s.Snapshot()

	wantDecisions := map[DecisionCount]bool{
		{Source: "rule", Verdict: "allow", Count: 6}:                true,
		{Source: "cache", Verdict: "allow", Count: 1}:               true,
		{Source: "rule", Verdict: "deny", Count: recentDenials + 5}: true,
	}
	if len(snap.Decisions) != len(wantDecisions) {
		t.Errorf("decisions %+v", snap.Decisions)
	}
	for _, d := range snap.Decisions {
		if !wantDecisions[d] {
			t.Errorf("unexpected %+v", d)
		}
	}
	if len(snap.Busiest) != 1 || snap.Busiest[0] != (ProcCount{Comm: comm, Count: 6 + 1 + recentDenials + 5}) {
		t.Errorf("busiest %+v, want all under %q", snap.Busiest, comm)
	}
	if len(snap.Recent) != recentDenials {
		t.Fatalf("%d recent denials, want %d", len(snap.Recent), recentDenials)
	}
	newest, oldest := snap.Recent[0], snap.Recent[recentDenials-1]
	if newest.Syscall != syscallName(recentDenials+4) || oldest.Syscall != syscallName(5) {
		t.Errorf("ring order: newest %s, oldest %s", newest.Syscall, oldest.Syscall)
	}
	if newest.Comm != comm || newest.PID != self || newest.Verdict != "deny" || newest.Errno != "EPERM" || newest.Rule != "web.toml:14:3 (syscalls.deny)" {
		t.Errorf("denial %+v", newest)
	}
	if snap.RulesActive != 12 || snap.RulesVersion != 3 {
		t.Errorf("rules %d v%d", snap.RulesActive, snap.RulesVersion)
	}

	// Counts accumulate across snapshots (the thread cache is folded, not lost).
	s.count(allow, n(0))
	if b := s.Snapshot().Busiest; len(b) != 1 || b[0].Count != 6+1+recentDenials+5+1 {
		t.Errorf("after a second snapshot: %+v", b)
	}
}

func TestLiveStatsManyThreads(t *testing.T) {
	var l liveStats
	l.init()
	allow := decision{action: profiles.ActionAllow, source: SourceRule, layer: SourceRule}
	// More threads than the cache holds (they do not exist: comm "?").
	for i := range maxThreads + 10 {
		l.count(allow, &kernel.Notif{PID: uint32(1<<22 + i)}, false)
	}
	if len(l.threads) > maxThreads {
		t.Errorf("thread cache grew to %d", len(l.threads))
	}
	var snap Snapshot
	l.fill(&snap)
	if len(snap.Busiest) != 1 || snap.Busiest[0] != (ProcCount{Comm: "?", Count: maxThreads + 10}) {
		t.Errorf("busiest %+v", snap.Busiest)
	}
}

// Snapshots taken while the receive thread counts lose no notification.
func TestLiveStatsConcurrentSnapshots(t *testing.T) {
	s := newStats("web", profiles.ModeEnforce)
	allow := decision{action: profiles.ActionAllow, source: SourceRule, layer: SourceRule}
	const total = 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			s.count(allow, &kernel.Notif{PID: uint32(1<<22 + i%50), Data: kernel.SeccompData{Nr: int32(i % 400)}})
		}
	}()
	for snaps := 0; ; snaps++ {
		select {
		case <-done:
			var sum uint64
			for _, p := range s.Snapshot().Busiest {
				sum += p.Count
			}
			if sum != total {
				t.Errorf("busiest adds up to %d after %d snapshots, want %d", sum, snaps, total)
			}
			return
		default:
			s.Snapshot()
		}
	}
}

func BenchmarkStatsCount(b *testing.B) {
	s := newStats("web", profiles.ModeEnforce)
	d := decision{action: profiles.ActionAllow, source: SourceCache, layer: SourceRule}
	n := &kernel.Notif{PID: uint32(os.Getpid())}
	for b.Loop() {
		s.count(d, n)
	}
}
