package profiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := LoadConfig(write("ok.toml", "[analyzer]\nbudget = \"250us\"\non_timeout = \"allow\"\n"))
	if err != nil || c.Budget != 250*time.Microsecond || c.OnTimeout != ActionAllow {
		t.Fatalf("LoadConfig = %+v, %v", c, err)
	}
	// A profile's own setting wins; what it leaves unset comes from the config.
	p, err := Parse("p.toml", []byte("[profile]\ndefault = \"allow\"\n[analyzer]\nmodel = \"none\"\nbudget = \"1ms\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	p.ApplyConfig(c)
	if p.Analyzer.Budget != time.Millisecond || p.Analyzer.OnTimeout != ActionAllow {
		t.Errorf("after ApplyConfig: %+v", p.Analyzer)
	}
	for name, tc := range map[string]struct{ text, want string }{
		"unknown key": {"[analyzer]\nbugdet = \"1ms\"\n", "unknown key"},
		"bad budget":  {"[analyzer]\nbudget = \"soon\"\n", "bad duration"},
		"bad verdict": {"[analyzer]\non_timeout = \"maybe\"\n", "unknown verdict"},
		"syntax":      {"[analyzer\n", "bad.toml:"},
	} {
		_, err := LoadConfig(write("bad.toml", tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
	if c, err := LoadConfig(""); err != nil || c == nil {
		t.Errorf("missing default config: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "absent.toml")); err == nil {
		t.Error("an explicit missing config is no error")
	}
}

func TestAnalyzerKeys(t *testing.T) {
	const head = "[profile]\ndefault = \"allow\"\n[analyzer]\n"
	for _, tc := range []struct {
		name, body, err string
		check           func(a Analyzer) bool
	}{
		{name: "chat", body: "model = \"chat\"\nendpoint = \"http://127.0.0.1:8080/v1/chat/completions\"\nchat_model = \"m\"\n",
			check: func(a Analyzer) bool { return a.Model == "chat" && a.ChatModel == "m" }},
		{name: "chat without model name", body: "model = \"chat\"\nendpoint = \"http://127.0.0.1:8080/v1/chat/completions\"\n", err: "needs chat_model"},
		{name: "chat off this machine", body: "model = \"chat\"\nendpoint = \"http://192.0.2.1/v1\"\nchat_model = \"m\"\n", err: "analyzer.endpoint"},
		{name: "audit", body: "model = \"builtin\"\nmode = \"audit\"\n", check: func(a Analyzer) bool { return a.Audit }},
		{name: "bad mode", body: "mode = \"shadow\"\n", err: "analyzer.mode"},
		{name: "sequence kill", body: "sequence = \"kill\"\n", check: func(a Analyzer) bool { return a.Sequence == "kill" }},
		{name: "bad sequence", body: "sequence = \"panic\"\n", err: "analyzer.sequence"},
		{name: "default model", body: "", check: func(a Analyzer) bool { return a.Model == "none" && !a.Audit && a.Sequence == "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("a.toml", []byte(head+tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "a.toml:") {
					t.Fatalf("err = %v, want one at a.toml:LINE mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(p.Analyzer) {
				t.Errorf("Analyzer = %+v", p.Analyzer)
			}
			// What show writes parses back to the same settings.
			shown, err := p.MarshalTOML()
			if err != nil {
				t.Fatal(err)
			}
			q, err := Parse("shown.toml", shown)
			if err != nil {
				t.Fatalf("show does not parse back: %v\n%s", err, shown)
			}
			if q.Analyzer != p.Analyzer {
				t.Errorf("after show: %+v, want %+v", q.Analyzer, p.Analyzer)
			}
		})
	}
}
