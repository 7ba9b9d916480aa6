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
