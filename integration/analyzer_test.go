package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/archangel-sandbox/archangel/supervisor"
)

// TestAnalyzerChat runs real programs under a profile whose model tier is
// an OpenAI-compatible chat endpoint: the decoded call arrives as the user
// message, the reply's content (here wrapped in a code fence, as local
// models like to) is enforced, a call with no pointer argument (uname) is
// decided on its scalar arguments, and a reply that is no verdict counts
// as a failure and falls back to on_timeout.
func TestAnalyzerChat(t *testing.T) {
	requireNotify(t)
	dir := t.TempDir()
	for _, f := range []string{"ok", "forbidden", "garbled"} {
		os.WriteFile(filepath.Join(dir, f), []byte("content-of-"+f+"\n"), 0o644)
	}
	var mu sync.Mutex
	var bad []string
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var cr struct {
			Model    string `json:"model"`
			Messages []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&cr); err != nil || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "bad request", 400)
			return
		}
		var req supervisor.AnalysisRequest
		mu.Lock()
		defer mu.Unlock()
		if cr.Model != "test-model" || len(cr.Messages) != 2 || cr.Messages[0].Role != "system" || cr.Messages[1].Role != "user" {
			bad = append(bad, fmt.Sprintf("request shape: %+v", cr))
		} else if err := json.Unmarshal([]byte(cr.Messages[1].Content), &req); err != nil {
			bad = append(bad, "user message is not the call's JSON: "+cr.Messages[1].Content)
		}
		calls[req.Syscall+":"+filepath.Base(req.Path)]++
		content := "```json\n{\"verdict\": \"allow\", \"score\": 0.1, \"reason\": \"ordinary\"}\n```"
		switch {
		case req.Syscall == "uname", filepath.Base(req.Path) == "forbidden":
			content = `{"verdict": "deny", "score": 0.9, "reason": "test says no"}`
		case filepath.Base(req.Path) == "garbled":
			content = "I think this is probably fine."
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]string{"role": "assistant", "content": content}}}})
	}))
	defer srv.Close()
	prof := filepath.Join(dir, "chat.toml")
	os.WriteFile(prof, []byte(fmt.Sprintf(`[profile]
default = "allow"
[syscalls]
notify = ["@open", "uname"]
[supervisor]
default = "allow"
[analyzer]
model = "chat"
endpoint = %q
chat_model = "test-model"
budget = "2s"
on_timeout = "deny"
`, srv.URL+"/v1/chat/completions")), 0o644)
	events := filepath.Join(dir, "events.jsonl")
	script := fmt.Sprintf("cd %s && cat ok; cat forbidden; cat garbled; uname -s || echo uname-refused", dir)
	r := archangel(t, nil, "run", "-p", prof, "--events", events, "--", "/bin/sh", "-c", script)
	wantCode(t, r, 0)
	wantContains(t, "stdout", r.stdout, "content-of-ok")
	wantContains(t, "stdout", r.stdout, "uname-refused")
	for _, s := range []string{"content-of-forbidden", "content-of-garbled", "Linux"} {
		if strings.Contains(r.stdout, s) {
			t.Errorf("%q in stdout: a deny (or a failed analysis) was not enforced:\n%s", s, r.stdout)
		}
	}
	wantContains(t, "summary", r.stderr, "analyzer: chat")
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
	if calls["uname:."] == 0 {
		t.Errorf("uname was never put to the model; asked: %v", calls)
	}
	ev, _ := os.ReadFile(events)
	if !strings.Contains(string(ev), `"source":"analyzer"`) || !strings.Contains(string(ev), "test says no") {
		t.Errorf("events name no analyzer verdict:\n%s", ev)
	}
}

// TestAnalyzerBuiltin runs the embedded risk model on real processes: a
// python reverse shell (connect to a local listener, dup2 onto 0/1/2,
// exec a shell) is refused at its exec, while ordinary execs of the same
// job run; in [analyzer] mode = "audit" the same shell runs and the
// summary counts what the model would have denied.
func TestAnalyzerBuiltin(t *testing.T) {
	requireNotify(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.Write([]byte("echo reverse-shell-ran\nexit\n"))
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	profile := func(mode string) string {
		p := filepath.Join(dir, mode+".toml")
		os.WriteFile(p, []byte(fmt.Sprintf(`[profile]
default = "allow"
[syscalls]
notify = ["@exec"]
[supervisor]
default = "allow"
advisory = ["exec"]
[analyzer]
model = "builtin"
mode = %q
on_timeout = "deny"
`, mode)), 0o644)
		return p
	}
	script := fmt.Sprintf(`import os, socket, subprocess
print(subprocess.run(["/bin/echo", "ordinary-exec-ran"], capture_output=True, text=True).stdout.strip())
s = socket.create_connection(("127.0.0.1", %d))
pid = os.fork()
if pid == 0:
    for fd in (0, 1, 2):
        os.dup2(s.fileno(), fd)
    try:
        os.execv("/bin/sh", ["sh", "-i"])
    except OSError as e:
        os.write(3, b"exec refused %%d\n" %% e.errno)
        os._exit(1)
_, status = os.waitpid(pid, 0)
print("shell status", status)
`, port)
	// The refused exec reports through fd 3, a copy of the original stdout.
	wrapper := "exec 3>&1; exec /usr/bin/python3 -c \"$1\""
	r := archangel(t, nil, "run", "-p", profile("enforce"), "--", "/bin/sh", "-c", wrapper, "sh", script)
	wantCode(t, r, 0)
	wantContains(t, "stdout", r.stdout, "ordinary-exec-ran")
	wantContains(t, "stdout", r.stdout, "exec refused 1")
	wantContains(t, "summary", r.stderr, "analyzer builtin: risk")

	r = archangel(t, nil, "run", "-p", profile("audit"), "--", "/bin/sh", "-c", wrapper, "sh", script)
	wantCode(t, r, 0)
	if strings.Contains(r.stdout, "exec refused") {
		t.Errorf("mode audit refused the exec:\n%s", r.stdout)
	}
	wantContains(t, "stdout", r.stdout, "shell status 0")
	if !regexp.MustCompile(`mode audit: [1-9][0-9]* calls the model would deny`).MatchString(r.stderr) {
		t.Errorf("summary does not count the audited denial:\n%s", r.stderr)
	}
}

// TestAnalyzerGlobalConfig: the machine-wide configuration sets the
// budget of a profile that leaves it unset, and a broken one stops the
// launch with its position.
func TestAnalyzerGlobalConfig(t *testing.T) {
	requireNotify(t)
	dir := t.TempDir()
	prof := filepath.Join(dir, "p.toml")
	os.WriteFile(prof, []byte(`[profile]
default = "allow"
[syscalls]
notify = ["@exec"]
[supervisor]
default = "allow"
advisory = ["exec"]
[analyzer]
model = "builtin"
mode = "audit"
`), 0o644)
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte("[analyzer]\nbudget = \"3ms\"\n"), 0o644)
	r := archangel(t, nil, "--config", cfg, "run", "-p", prof, "--", "/bin/sh", "-c", "/bin/true")
	wantCode(t, r, 0)
	wantContains(t, "summary", r.stderr, "budget now 3ms")
	os.WriteFile(cfg, []byte("[analyzer]\nbudget = \"3 ms\"\n"), 0o644)
	r = archangel(t, nil, "--config", cfg, "run", "-p", prof, "--", "/bin/true")
	wantCode(t, r, 125)
	wantContains(t, "stderr", r.stderr, "analyzer.budget")
}
