package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor"
)

// TestLearnedOverlay is the learning loop with real processes: two runs
// whose model (a local scoring endpoint) denies one file and
// personality(0) leave an overlay with those verdicts as rules; a third
// run with the endpoint gone (on_timeout allows everything) still denies
// both, personality in the kernel filter (never notified) and the file
// by the supervisor from the learned verdict. The model also allows a
// credential read and a mount, which the overlay refuses to learn.
func TestLearnedOverlay(t *testing.T) {
	requireNotify(t)
	dir := t.TempDir()
	for _, f := range []string{"ok", "forbidden"} {
		os.WriteFile(filepath.Join(dir, f), []byte("content-of-"+f+"\n"), 0o644)
	}
	var mu sync.Mutex
	asked := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req supervisor.AnalysisRequest
		json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		asked[req.Syscall+" "+req.Path]++
		mu.Unlock()
		verdict := "allow"
		if req.Syscall == "personality" || filepath.Base(req.Path) == "forbidden" {
			verdict = "deny"
		}
		json.NewEncoder(w).Encode(supervisor.AnalysisResponse{Verdict: verdict, Score: 0.5, Reason: "test"})
	}))
	defer srv.Close()
	prof := filepath.Join(dir, "learnt.toml")
	os.WriteFile(prof, []byte(fmt.Sprintf(`[profile]
default = "allow"
[syscalls]
notify = ["@open", "personality", "mount"]
[supervisor]
default = "allow"
[analyzer]
model = "http"
endpoint = %q
budget = "2s"
on_timeout = "allow"
`, srv.URL+"/score")), 0o644)
	overlay := filepath.Join(dir, "learnt.learned.toml")
	catExe, err := exec.LookPath("cat")
	if err == nil {
		catExe, err = filepath.EvalSymlinks(catExe)
	}
	if err != nil {
		t.Fatalf("cat: %v", err)
	}
	script := fmt.Sprintf("cd %s && cat ok; cat forbidden || echo forbidden-refused; cat /etc/shadow >/dev/null; %s personality mount",
		dir, strings.Join(victim("errno"), " "))

	for run := 1; run <= 2; run++ {
		r := archangel(t, nil, "run", "-p", prof, "--", "/bin/sh", "-c", script)
		wantCode(t, r, 0)
		t.Logf("run %d (model up):\n%s", run, r.stderr)
		wantContains(t, "stdout", r.stdout, "content-of-ok")
		wantContains(t, "stdout", r.stdout, "forbidden-refused")
		wantContains(t, "stdout", r.stdout, "personality: errno=EPERM")
		ov, err := profiles.LoadOverlay(overlay)
		if err != nil || ov == nil {
			t.Fatalf("run %d: overlay %s: %v, %v\nstderr:\n%s", run, overlay, ov, err, r.stderr)
		}
		learned := map[string]profiles.LearnedVerdict{}
		list := ov.Pending
		if run == 2 {
			list = ov.Rules
		}
		for _, v := range list {
			learned[v.What()] = v
		}
		pers, ok := learned["personality(arg0=0x0)"]
		if !ok || pers.Action != profiles.ActionErrno || pers.Runs != run || pers.Count < run || pers.Source != "analyzer" || len(pers.SeenIn) != 1 {
			t.Errorf("run %d: personality evidence %+v (found %v) in\n%s", run, pers, ok, ov.Marshal())
		}
		forb, ok := learned[fmt.Sprintf("openat %q (read) by %s", filepath.Join(dir, "forbidden"), catExe)]
		if !ok || forb.Action != profiles.ActionErrno || forb.Runs != run {
			t.Errorf("run %d: no deny of forbidden in the overlay:\n%s", run, ov.Marshal())
		}
		refused := map[string]string{}
		for _, v := range ov.Refused {
			refused[v.Syscall+" "+v.Path] = v.Reason
		}
		if !strings.Contains(refused["openat /etc/shadow"], "credential path") || !strings.Contains(refused["mount "], "may not allow mount") {
			mu.Lock()
			t.Errorf("run %d: the credential read and the mount were not refused: %v\n%s\nasked: %v\nstdout:\n%s\nstderr:\n%s", run, refused, ov.Marshal(), asked, r.stdout, r.stderr)
			mu.Unlock()
		}
		for _, v := range append(ov.Rules, ov.Pending...) {
			if v.Syscall == "mount" || v.Path == "/etc/shadow" {
				t.Errorf("run %d: overlay would learn %s %s", run, v.Action.String(), v.What())
			}
		}
	}
	mu.Lock()
	askedFirst := asked["personality "]
	mu.Unlock()
	if askedFirst == 0 {
		t.Fatalf("personality was never put to the model: %v", asked)
	}

	// show marks the learned rules; check lists the overlay.
	r := archangel(t, nil, "profile", "show", prof)
	wantCode(t, r, 0)
	wantContains(t, "show", r.stdout, "learned.rule[")
	wantContains(t, "show", r.stdout, "# learned: ")
	wantContains(t, "show", r.stdout, "verdicts in 2 runs from the analyzer")
	wantContains(t, "show", r.stdout, "(read) by "+catExe)
	r = archangel(t, nil, "profile", "check", prof)
	wantCode(t, r, 0)
	wantContains(t, "check", r.stdout, "learned overlay "+overlay)
	wantContains(t, "check", r.stdout, "refused")

	// The model is gone: on_timeout would allow everything.
	srv.Close()
	events := filepath.Join(dir, "events.jsonl")
	r = archangel(t, nil, "run", "-p", prof, "--events", events, "--", "/bin/sh", "-c", script)
	wantCode(t, r, 0)
	t.Logf("run 3 (model gone, learned verdicts):\n%s", r.stderr)
	wantContains(t, "stdout", r.stdout, "content-of-ok")
	wantContains(t, "stdout", r.stdout, "forbidden-refused")
	wantContains(t, "stdout", r.stdout, "personality: errno=EPERM")
	if strings.Contains(r.stdout, "content-of-forbidden") {
		t.Errorf("the learned deny of forbidden was not enforced:\n%s", r.stdout)
	}
	var forbiddenSource string
	for _, e := range readEvents(t, events) {
		if e["syscall"] == "personality" {
			t.Errorf("personality(0) was notified, but its learned verdict belongs in the kernel filter: %v", e)
		}
		if p, _ := e["path"].(string); filepath.Base(p) == "forbidden" {
			forbiddenSource, _ = e["source"].(string)
		}
	}
	if forbiddenSource != "learned" {
		t.Errorf("the open of forbidden was decided by %q, want the learned verdict", forbiddenSource)
	}
	wantContains(t, "summary", r.stderr, "learned")

	// --no-learned: the profile alone, and the model still gone.
	r = archangel(t, nil, "run", "--no-summary", "--no-learned", "-p", prof, "--", "/bin/sh", "-c", script)
	wantCode(t, r, 0)
	wantContains(t, "stdout", r.stdout, "content-of-forbidden")
	wantContains(t, "stdout", r.stdout, "personality: ret=")
}

// TestLearnedOverlayRefused: an overlay that would allow a mount or a
// credential read is an error naming the entry, never a weaker filter;
// --no-learned runs without it.
func TestLearnedOverlayRefused(t *testing.T) {
	requireNotify(t)
	dir := t.TempDir()
	prof := filepath.Join(dir, "app.toml")
	os.WriteFile(prof, []byte(`[profile]
default = "allow"
[syscalls]
notify = ["@open", "mount"]
[supervisor]
default = "allow"
`), 0o644)
	os.WriteFile(filepath.Join(dir, "app.learned.toml"), []byte(`[overlay]
profile = "app"

[[rule]]
syscall = "mount"
verdict = "allow"
args = [{ index = 3, value = 0 }]
count = 2
runs = 2

[[rule]]
syscall = "openat"
verdict = "allow"
exe = "/usr/bin/cat"
path = "/etc/shadow"
access = "read"
count = 2
runs = 2
`), 0o644)
	r := archangel(t, nil, "run", "--no-summary", "-p", prof, "--", "/bin/true")
	wantCode(t, r, supervisor.ExitFailure)
	wantContains(t, "stderr", r.stderr, "app.learned.toml:5:11: rule[0]: a learned verdict may not allow mount (it is in @mount)")
	wantContains(t, "stderr", r.stderr, "app.learned.toml:15:8: rule[1]: a learned verdict may not allow openat on /etc/shadow: it is a credential path")
	wantContains(t, "stderr", r.stderr, "--no-learned")
	r = archangel(t, nil, "profile", "check", prof)
	wantCode(t, r, 1)
	r = archangel(t, nil, "run", "--no-summary", "--no-learned", "-p", prof, "--", "/bin/true")
	wantCode(t, r, 0)
}
