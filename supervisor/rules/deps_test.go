package rules

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/archangel-sandbox/archangel/analyzer"
)

// TestDeps keeps the package pure: profiles, analyzer and the standard
// library, no cgo, nothing kernel-facing.
func TestDeps(t *testing.T) {
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	cmd := exec.CommandContext(t.Context(), gobin, "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const mod = "github.com/archangel-sandbox/archangel/"
	allowed := map[string]bool{mod + "profiles": true, mod + "analyzer": true, mod + "supervisor/rules": true}
	for _, dep := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(dep, "/")
		if dep == "C" || dep == "runtime/cgo" || strings.HasPrefix(dep, mod) && !allowed[dep] ||
			strings.Contains(first, ".") && !strings.HasPrefix(dep, mod) && !strings.HasPrefix(dep, "github.com/BurntSushi/toml") {
			t.Errorf("rules depends on %s", dep)
		}
	}
}

// TestConcurrent runs Decide on one Set while Refresh makes the next (run
// with -race).
func TestConcurrent(t *testing.T) {
	clk := &clock{now: t0}
	res := newFakeResolver()
	res.set("a.example", "192.0.2.1")
	s, err := compile(context.Background(), parse(t, strings.Replace(fiftyRules(), `connect = [`, `connect = ["a.example:443", `, 1)), testEnv, res, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				for _, bc := range benchCalls {
					s.Decide(bc.call, bc.anc)
				}
				s.Decide(connectCall("192.0.2.1:443"), nil)
			}
		})
	}
	cur := s
	for i := range 50 {
		clk.Advance(time.Minute)
		res.set("a.example", "192.0.2."+string(rune('1'+i%8)))
		n, err := cur.Refresh(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		cur = n
		_ = cur.Decide(&analyzer.Call{Kind: analyzer.KindOpen, Path: "/usr/x"}, nil)
	}
	wg.Wait()
	if cur.Version() <= s.Version() {
		t.Errorf("version %d after refreshes with changes", cur.Version())
	}
}
