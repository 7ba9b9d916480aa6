package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/archangel-sandbox/archangel/supervisor"
)

func statsSnapshot() supervisor.Snapshot {
	return supervisor.Snapshot{
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
		Busiest:       []supervisor.ProcCount{{Comm: "curl", Count: 8}, {Comm: "evil\x1b[2J", Count: 2}},
		Recent: []supervisor.Denial{{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local), PID: 42, Comm: "curl",
			Syscall: "connect", Verdict: "deny", Errno: "EPERM", Rule: "web.toml:14:3 (syscalls.deny)"}},
		RulesActive:  12,
		RulesVersion: 3,

		AnalyzerModel: "builtin", AnalyzerAudit: true, AnalyzerWouldDeny: 2, AnalyzerDone: 9,
		AnalyzerP50NS: 3000, AnalyzerP99NS: 40000, AnalyzerOverruns: 1, AnalyzerBudgetNS: 100000,
		Seq: &supervisor.SeqStats{Active: true, Threads: 5, Scored: 4, Anomalous: 1, Calls: 700},
	}
}

// serveStats serves statsSnapshot at dir/PID.sock and points controlDir at dir.
func serveStats(t *testing.T, dir string, pid int) (path string, srv io.Closer) {
	t.Helper()
	path = filepath.Join(dir, strconv.Itoa(pid)+".sock")
	srv, err := supervisor.ServeControl(path, statsSnapshot, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return path, srv
}

func useControlDir(t *testing.T, dir string) {
	old := controlDir
	controlDir = func() string { return dir }
	t.Cleanup(func() { controlDir = old })
}

// syncBuffer is a bytes.Buffer safe to read while a watch writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func runStats(t *testing.T, ctx context.Context, c statsCmd) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb syncBuffer
	err = c.run(ctx, &Globals{stdout: &out, stderr: &errb})
	return out.String(), errb.String(), err
}

func TestStatsText(t *testing.T) {
	dir := t.TempDir()
	useControlDir(t, dir)
	path, _ := serveStats(t, dir, os.Getpid())

	for _, target := range []string{path, "", strconv.Itoa(os.Getpid())} {
		t.Run("target="+target, func(t *testing.T) {
			out, _, err := runStats(t, t.Context(), statsCmd{Target: target})
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				"archangel " + strconv.Itoa(os.Getpid()) + ": profile web (enforce), up 0s, targets ",
				"notifications  10 received, 7 answered, 1 vanished, queue depth 2",
				"verdicts       allow 6, deny 4",
				"sources        rule 7, cache 3",
				"cache          75.0% hits (3/4), 0 evictions, capacity 4096",
				"decision time  p50 4µs, p99 20µs",
				"rules          12 active, version 3",
				"analyzer       builtin: 9 analyses (p50 3µs, p99 40µs), 1 over budget, 0 deferred, 0 failed; budget 100µs",
				"               mode audit: 2 calls the model would deny ran",
				"sequence       4 threads scored, 1 anomalous, 700 calls, 0 records lost",
				"BUSIEST   NOTIFICATIONS\ncurl      8\nevil?[2J  2\n",
				"LATEST DENIALS\n",
				"TIME          PID  COMM  SYSCALL  VERDICT     RULE\n03:04:05.000  42   curl  connect  deny EPERM  web.toml:14:3 (syscalls.deny)\n",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "\x1b") {
				t.Errorf("escape sequence from a comm reached the terminal:\n%q", out)
			}
		})
	}
}

func TestStatsJSON(t *testing.T) {
	dir := t.TempDir()
	path, _ := serveStats(t, dir, 1)
	out, _, err := runStats(t, t.Context(), statsCmd{JSON: true, Target: path})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for k, want := range map[string]any{
		"profile": "web", "mode": "enforce", "notifications_received": 10.0, "queue_depth": 2.0,
		"cache_hit_rate": 0.75, "rules_active": 12.0, "rules_version": 3.0, "pid": float64(os.Getpid()),
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	for _, k := range []string{"busiest", "recent_denials", "decision_p50_ns", "targets", "uptime_ns"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q", k)
		}
	}
}

func TestStatsNoSupervisor(t *testing.T) {
	dir := t.TempDir()
	useControlDir(t, dir)
	// A socket nobody listens on (its supervisor was SIGKILLed) does not
	// count, nor does a file that only looks like a socket.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, strconv.Itoa(os.Getpid())+".sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	os.WriteFile(filepath.Join(dir, "1.sock"), nil, 0o600)

	_, _, err = runStats(t, t.Context(), statsCmd{})
	var es *exitStatus
	if !errors.As(err, &es) || es.code != 1 {
		t.Fatalf("err = %v, want exit status 1", err)
	}
	msg := es.err.Error()
	if !strings.Contains(msg, "no running supervisor found in "+dir) || !strings.Contains(msg, "\thint: start one with `archangel run -- COMMAND`") {
		t.Errorf("message:\n%s", msg)
	}

	for target, want := range map[string]string{
		filepath.Join(dir, "none.sock"): "no control socket at " + filepath.Join(dir, "none.sock") + "\n\thint:",
		strconv.Itoa(os.Getpid()):       "nobody answers on " + filepath.Join(dir, strconv.Itoa(os.Getpid())+".sock"),
		"1":                             "process 1 is not a supervisor nor supervised by one",
		strconv.Itoa(1 << 30):           "no process 1073741824",
	} {
		_, _, err := runStats(t, t.Context(), statsCmd{Target: target})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("stats %s: %v, want %q", target, err, want)
		}
	}
}

func TestStatsFindsSupervisor(t *testing.T) {
	dir := t.TempDir()
	useControlDir(t, dir)
	self, _ := serveStats(t, dir, os.Getpid())

	// A PID below the supervisor leads to it.
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	// Start returns once the exec is under way (close-on-exec has run);
	// the new program's argument area is set up a moment later.
	for i := 0; i < 200; i++ {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(child.Process.Pid) + "/cmdline"); len(b) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, err := (&statsCmd{Target: strconv.Itoa(child.Process.Pid)}).socket(); err != nil || got != self {
		t.Errorf("child PID: %q, %v; want %q", got, err, self)
	}

	// Two live supervisors: name one.
	serveStats(t, dir, child.Process.Pid)
	_, _, err := runStats(t, t.Context(), statsCmd{})
	if err == nil {
		t.Fatal("two supervisors: no error")
	}
	msg := err.Error()
	for _, want := range []string{"2 supervisors are running in " + dir + "; name one", "\n\t" + strconv.Itoa(os.Getpid()) + "\t", "\n\t" + strconv.Itoa(child.Process.Pid) + "\tsleep 30"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

func TestStatsWatch(t *testing.T) {
	dir := t.TempDir()
	path, srv := serveStats(t, dir, 1)

	t.Run("until the supervisor goes away", func(t *testing.T) {
		var out, errb syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- (&statsCmd{Watch: true, Interval: 5 * time.Millisecond, Target: path}).run(t.Context(), &Globals{stdout: &out, stderr: &errb})
		}()
		for strings.Count(out.String(), "\x1b[H\x1b[2J") < 3 {
			time.Sleep(time.Millisecond)
		}
		srv.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("watch did not stop when the supervisor went away")
		}
		if frames := strings.Split(out.String(), "\x1b[H\x1b[2J"); len(frames) < 4 || !strings.HasPrefix(frames[1], "archangel ") {
			t.Errorf("frames: %q", frames)
		}
		if !strings.Contains(errb.String(), "archangel: stats: supervisor gone: no control socket at "+path) {
			t.Errorf("stderr: %q", errb.String())
		}
	})

	t.Run("until interrupted, JSON lines", func(t *testing.T) {
		path, _ := serveStats(t, dir, 2)
		ctx, cancel := context.WithCancel(t.Context())
		var out, errb syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- (&statsCmd{Watch: true, JSON: true, Interval: 5 * time.Millisecond, Target: path}).run(ctx, &Globals{stdout: &out, stderr: &errb})
		}()
		for strings.Count(out.String(), "\n") < 3 {
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		for _, l := range lines {
			var st supervisor.Status
			if err := json.Unmarshal([]byte(l), &st); err != nil || st.Profile != "web" {
				t.Errorf("line %q: %v", l, err)
			}
		}
		if strings.Contains(out.String(), "\x1b") {
			t.Error("escape sequences in JSON lines")
		}
	})

	t.Run("nothing to watch", func(t *testing.T) {
		_, _, err := runStats(t, t.Context(), statsCmd{Watch: true, Target: filepath.Join(dir, "none.sock")})
		var es *exitStatus
		if !errors.As(err, &es) || es.code != 1 {
			t.Errorf("err = %v, want exit status 1", err)
		}
	})
}

func TestStatsGrammar(t *testing.T) {
	var c struct {
		Stats statsCmd `cmd:""`
	}
	var help bytes.Buffer
	parser, err := kong.New(&c, kong.Name("archangel"), kong.Writers(&help, &help), kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse([]string{"stats", "--json", "-w", "--interval=10ms", "1234"}); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats; !s.JSON || !s.Watch || s.Interval != 10*time.Millisecond || s.Target != "1234" {
		t.Errorf("parsed %+v", s)
	}
	c.Stats = statsCmd{}
	if _, err := parser.Parse([]string{"stats"}); err != nil || c.Stats.Interval != time.Second || c.Stats.Target != "" {
		t.Errorf("defaults: %+v, %v", c.Stats, err)
	}
	_, _ = parser.Parse([]string{"stats", "--help"})
	if h := help.String(); !strings.Contains(h, "--watch") || strings.Contains(h, "interval") {
		t.Errorf("help shows --interval or lacks --watch:\n%s", h)
	}
}

func TestControlSocketFlag(t *testing.T) {
	if got, want := controlSocketFlag(""), supervisor.DefaultControlPath(os.Getpid()); got != want {
		t.Errorf("default: %q, want %q", got, want)
	}
	if got := controlSocketFlag("none"); got != "" {
		t.Errorf("none: %q", got)
	}
	if got := controlSocketFlag("/x/y.sock"); got != "/x/y.sock" {
		t.Errorf("path: %q", got)
	}
}
