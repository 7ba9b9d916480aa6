package patterns

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeps keeps the package pure: analyzer, profiles, supervisor/rules
// (its glob matcher, itself pure), BurntSushi/toml and the standard
// library; no cgo, nothing kernel-facing.
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
	allowed := map[string]bool{mod + "profiles": true, mod + "analyzer": true, mod + "supervisor/patterns": true, mod + "supervisor/rules": true}
	for _, dep := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(dep, "/")
		if dep == "C" || dep == "runtime/cgo" || strings.HasPrefix(dep, mod) && !allowed[dep] ||
			strings.Contains(first, ".") && !strings.HasPrefix(dep, mod) && !strings.HasPrefix(dep, "github.com/BurntSushi/toml") {
			t.Errorf("patterns depends on %s", dep)
		}
	}
}
