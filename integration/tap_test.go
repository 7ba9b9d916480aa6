package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/supervisor"
)

// The sequence model fed by the syscall tap, end to end: learn a program,
// run it again (nothing reported), run the same executable down another
// code path (reported).
func TestSequenceModelRootLearnThenAudit(t *testing.T) {
	requireNotify(t)
	if os.Geteuid() != 0 {
		missing(t, "the syscall tap needs root (CAP_BPF, CAP_PERFMON)")
	}
	if !treeCgroupExpected() {
		missing(t, "the syscall tap needs a cgroup v2 for the sandboxed tree")
	}
	dir := t.TempDir()
	prof := filepath.Join(dir, "app.toml")
	normal := victim("errno", "getppid", "getppid")
	self, err := filepath.EvalSymlinks(selfBin)
	if err != nil {
		t.Fatal(err)
	}
	// Three learning runs: the model learns from all of them.
	for i := 1; i <= 3; i++ {
		r := archangel(t, nil, append([]string{"learn", "--out", prof, "--"}, normal...)...)
		wantCode(t, r, 0)
		if strings.Contains(r.stderr, "no sequence model trained") {
			missing(t, "no sequence model trained: "+r.stderr)
		}
		wantContains(t, "learn stderr", r.stderr, "sequence model: "+self+": ")
		if i == 3 {
			wantContains(t, "learn stderr", r.stderr, " 3 run(s), ")
		}
		if _, err := os.Stat(filepath.Join(dir, "app.seq")); err != nil {
			t.Fatalf("learn wrote no app.seq: %v\nstderr:\n%s", err, r.stderr)
		}
	}

	// The same behaviour: no thread reported. Several runs, because what
	// varies between runs of a Go program (its runtime threads) is what
	// the threshold must absorb.
	for i := range 3 {
		events := filepath.Join(dir, "normal.jsonl")
		os.Remove(events)
		r := archangel(t, nil, append([]string{"run", "--mode", "audit", "--profile", prof, "--events", events, "--"}, normal...)...)
		wantCode(t, r, 0)
		wantContains(t, "summary", r.stderr, " 0 anomalous")
		if !strings.Contains(r.stderr, "sequence: ") || strings.Contains(r.stderr, "sequence: 0 threads scored") {
			t.Fatalf("run %d: no thread scored\nstderr:\n%s", i, r.stderr)
		}
		for _, e := range readEvents(t, events) {
			if e["kind"] == "sequence" {
				t.Fatalf("run %d: ordinary run reported: %v\nstderr:\n%s", i, e, r.stderr)
			}
		}
	}

	// Enforce mode: the supervisor carries out opens itself and refuses
	// what the profile does not allow, and the stream (sys_exit) still
	// shows those calls: the same program is not reported.
	r := archangel(t, nil, append([]string{"run", "--mode", "enforce", "--profile", prof, "--"}, normal...)...)
	wantCode(t, r, 0)
	wantContains(t, "enforce summary", r.stderr, " 0 anomalous")

	// The same executable, another code path: a burst of calls it never
	// made while learning.
	events := filepath.Join(dir, "odd.jsonl")
	odd := victim("errno", "getpgrp", "uname", "getppid", "setpgid", "getsid", "setsid", "getpriority",
		"sched_getscheduler", "sched_yield", "getrusage", "times", "sysinfo", "getcpu")
	r = archangel(t, nil, append([]string{"run", "--mode", "audit", "--profile", prof, "--events", events, "--"}, odd...)...)
	wantCode(t, r, 0)
	var reported []map[string]any
	for _, e := range readEvents(t, events) {
		if e["kind"] == "sequence" {
			reported = append(reported, e)
		}
	}
	if len(reported) == 0 {
		t.Fatalf("the other code path was not reported\nstderr:\n%s", r.stderr)
	}
	for _, e := range reported {
		score, _ := e["score"].(float64)
		thr, _ := e["threshold"].(float64)
		if e["exe"] != self || !(score > thr) || e["tid"] == nil {
			t.Errorf("sequence event %v: want exe %s, score above threshold, a tid", e, self)
		}
	}
	wantContains(t, "summary", r.stderr, " 1 anomalous")

	// [analyzer] sequence = "kill": the same code path in enforce mode is
	// killed once the anomaly is found, long before the sleep after it
	// ends.
	killProf := filepath.Join(dir, "kill.toml")
	os.WriteFile(killProf, []byte("[profile]\nextends = [\"app.toml\"]\ndefault = \"allow\"\n[analyzer]\nsequence = \"kill\"\n"), 0o644)
	oddSleep := victim("errnosleep", append([]string{"5000"}, odd[len(victim("errno")):]...)...)
	start := time.Now()
	r = archangel(t, nil, append([]string{"run", "--profile", killProf, "--seq-model", filepath.Join(dir, "app.seq"), "--"}, oddSleep...)...)
	if r.code != 128+9 || strings.Contains(r.stdout, "slept") {
		t.Fatalf("sequence = \"kill\": exit %d, want 137 (killed)\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("killed after %v: the anomaly was not acted on while the thread ran", d)
	}
	wantContains(t, "summary", r.stderr, " 1 anomalous")

	// [analyzer] sequence = "deny": the anomalous thread's next notified
	// call — an open the learned [files] rules allow — is refused; with
	// "report" the same open succeeds.
	for _, tc := range []struct{ response, want string }{{"deny", "open: open /sys/kernel/mm/transparent_hugepage/hpage_pmd_size: operation not permitted"}, {"report", "open ok"}} {
		p := filepath.Join(dir, tc.response+".toml")
		os.WriteFile(p, []byte("[profile]\nextends = [\"app.toml\"]\ndefault = \"allow\"\n[analyzer]\nsequence = \""+tc.response+"\"\n"), 0o644)
		oddOpen := victim("errnoopen", append([]string{"/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"}, odd[len(victim("errno")):]...)...)
		r = archangel(t, nil, append([]string{"run", "--profile", p, "--seq-model", filepath.Join(dir, "app.seq"), "--"}, oddOpen...)...)
		wantCode(t, r, 0)
		wantContains(t, "sequence = "+tc.response+" stdout", r.stdout, tc.want)
	}

	// --seq-model none turns it off.
	r = archangel(t, nil, append([]string{"run", "--mode", "audit", "--profile", prof, "--seq-model", "none", "--"}, odd...)...)
	wantCode(t, r, 0)
	if strings.Contains(r.stderr, "sequence: ") {
		t.Errorf("--seq-model none still scored:\n%s", r.stderr)
	}
}

// Without privileges there is no tap: learning still works and says that
// no sequence model was trained, and why.
func TestSequenceModelUnprivilegedLearnSaysWhy(t *testing.T) {
	requireNotify(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to run archangel as another, unprivileged user")
	}
	// t.TempDir's parent is closed to other users: a directory of our own.
	dir, err := os.MkdirTemp("", "archangel-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(dir, "app.toml")
	cmd := []string{"learn", "--out", prof, "--", "/bin/true"}
	r := archangelAs(t, dir, 65534, cmd...)
	wantCode(t, r, 0)
	wantContains(t, "learn stderr", r.stderr, "no sequence model trained: syscall tap unavailable: needs CAP_BPF")
	if _, err := os.Stat(filepath.Join(dir, "app.seq")); err == nil {
		t.Fatal("an app.seq was written without a tap")
	}

	// A run with models but no tap goes on, and says the streams are not
	// scored.
	m, err := analyzer.Train([][]int{{0, 1, 2, 3}}, analyzer.DefaultSeqConfig(2, analyzer.KneserNey, 0.75))
	if err != nil {
		t.Fatal(err)
	}
	models := &supervisor.SeqModels{Programs: map[string]*supervisor.SeqProgram{"/usr/bin/true": {Exe: "/usr/bin/true", Model: m, Threshold: 3}}}
	seq := filepath.Join(dir, "app.seq")
	if err := models.WriteFile(seq); err != nil {
		t.Fatal(err)
	}
	r = archangelAs(t, dir, 65534, "run", "--profile", prof, "--", "/bin/true")
	wantCode(t, r, 0)
	wantContains(t, "run summary", r.stderr, "sequence: not fed (syscall tap unavailable: needs CAP_BPF")
	wantContains(t, "run summary", r.stderr, "degraded: syscall tap unavailable")

	// --fail-degraded: the same run is refused before the command starts.
	marker := filepath.Join(dir, "ran")
	r = archangelAs(t, dir, 65534, "run", "--fail-degraded", "--profile", prof, "--", "/usr/bin/touch", marker)
	wantCode(t, r, 125)
	wantContains(t, "stderr", r.stderr, "not started")
	wantContains(t, "stderr", r.stderr, "syscall tap unavailable")
	if _, err := os.Stat(marker); err == nil {
		t.Error("--fail-degraded: the command ran")
	}
}

// archangelAs runs a copy of archangel (the built one is in a directory
// only root may enter) in dir as uid (and gid) uid.
func archangelAs(t *testing.T, dir string, uid uint32, args ...string) result {
	t.Helper()
	b, err := os.ReadFile(archangelBin)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "archangel")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run archangel as uid %d: %v", uid, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}
