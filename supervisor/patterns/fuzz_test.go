package patterns

import (
	"strings"
	"testing"
	"time"

	"github.com/archangel-sandbox/archangel/analyzer"
)

// FuzzLoadPatterns: Load never panics; it returns an engine or an error,
// never both; an engine observes events without panicking.
func FuzzLoadPatterns(f *testing.F) {
	f.Add(string(builtinTOML))
	f.Add(okPattern)
	f.Add(strings.Replace(okPattern, `fd = "$s"`, `args = [{ index = 1, op = "masked_eq", mask = 3, value = [1] }]`, 1))
	f.Add("[[pattern]]\nname = \"x\"\n[[pattern.step]]\n[[pattern.step]]\n\"a\".b = '''x\n'''\n")
	f.Add("[[pattern]]\nname=\"x\"\nrisk=1\nverdict=\"kill\"\n[[pattern.step]]\ndenied=true\ncount=3\nwindow=\"1s\"\n")
	calls := []*analyzer.Call{
		connectCall(10, 3, evil), dup2(10, 3, 0), execve(10, "/bin/sh"), openCall(10, "/proc/1/environ", rd),
		openCall(10, "/tmp/x", wr), execve(11, "/tmp/x"), sys(10, "ptrace"), {Name: "", Kind: -1}, {Name: "x", Kind: 99},
	}
	f.Fuzz(func(t *testing.T, text string) {
		e, err := Load("f.toml", []byte(text), Env{HOME: "/h"})
		if (e == nil) == (err == nil) {
			t.Fatalf("engine %v, error %v", e, err)
		}
		if e == nil {
			return
		}
		e.SetLimits(Limits{Total: 16})
		for i := range 50 {
			c := calls[i%len(calls)]
			e.Observe(Event{Call: c, Time: time.Unix(int64(i), 0), Denied: i%2 == 0, RetKnown: i%3 == 0, Ret: 3, Tree: []int{11, 10}})
			if e.States() > 16 {
				t.Fatal("limit")
			}
		}
		e.Forget(10)
		_ = e.Patterns()
		_ = e.Syscalls()
	})
}
