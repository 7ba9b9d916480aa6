package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
