package profiles

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func FuzzParseProfile(f *testing.F) {
	for _, n := range BuiltinNames() {
		data, _ := Builtin(n)
		f.Add(data)
	}
	files, _ := filepath.Glob("testdata/bad/*.toml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("[profile]\ndefault = \"allow\"\nio_uring = true\n"))
	f.Add([]byte("[syscalls]\nallow = [\"@launcher\"]\n[[syscalls.rule]]\nnames=[\"ioctl\"]\naction=\"allow\"\nargs=[{index=1,op=\"masked_eq\",mask=0xff,value=\"0x10\"}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A fuzz.toml in a fresh directory: relative extends find nothing.
		file := filepath.Join(t.TempDir(), "fuzz.toml")
		var p *Profile
		var err error
		done := make(chan struct{})
		go func() { p, err = Parse(file, data); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatalf("Parse hangs on %q", data)
		}
		if (p == nil) == (err == nil) {
			t.Fatalf("Parse returned profile %v and error %v", p != nil, err)
		}
		if err != nil {
			if len(Errors(err)) == 0 {
				t.Fatalf("error without *Error: %v", err)
			}
			return
		}
		checkPolicies(t, p)
		for _, s := range LauncherSyscalls {
			if sp := p.Policy(s); !launcherOK(s, sp.Action) {
				t.Fatalf("valid profile fails the launcher check for %s: %+v", s, sp)
			}
		}
	})
}
