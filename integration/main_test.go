// Package integration runs real programs under real seccomp filters with a
// real supervisor: the archangel binary is built once, and the test binary
// doubles as the victim programs (TestMain dispatches ARCHANGEL_VICTIM).
package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/archangel-sandbox/archangel/supervisor"
)

var (
	archangelBin string // built by TestMain
	selfBin      string // this test binary, used as victim
)

func TestMain(m *testing.M) {
	supervisor.RunShimIfRequested()
	if v := os.Getenv("ARCHANGEL_VICTIM"); v != "" {
		os.Exit(runVictim(v, os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "archangel-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	archangelBin = filepath.Join(dir, "archangel")
	build := exec.Command("go", "build", "-o", archangelBin, "github.com/archangel-sandbox/archangel/cmd/archangel")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build archangel: %v\n%s", err, out)
		os.Exit(1)
	}
	selfBin, _ = os.Executable()
	fdsBefore := countFDs()
	goroutinesBefore := runtime.NumGoroutine()
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		// In-process supervisors must not leak descriptors or goroutines.
		time.Sleep(100 * time.Millisecond)
		if n := countFDs(); n > fdsBefore {
			fmt.Fprintf(os.Stderr, "leak: %d open descriptors after the tests, %d before\n", n, fdsBefore)
			code = 1
		}
		if n := runtime.NumGoroutine(); n > goroutinesBefore+2 {
			fmt.Fprintf(os.Stderr, "leak: %d goroutines after the tests, %d before\n", n, goroutinesBefore)
			code = 1
		}
	}
	os.Exit(code)
}

func countFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

// result is what one archangel run produced.
type result struct {
	stdout, stderr string
	code           int
}

// archangel runs the archangel binary with args, with a deadline, and the
// extra environment env.
func archangel(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, archangelBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("archangel %s: timed out\nstderr:\n%s", strings.Join(args, " "), errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("archangel itself died of %v\nstderr:\n%s", ws.Signal(), errb.String())
		}
	} else if err != nil {
		t.Fatalf("run archangel: %v", err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// victim returns the argv that runs this test binary as victim name.
func victim(name string, args ...string) []string {
	return append([]string{"env", "ARCHANGEL_VICTIM=" + name, selfBin}, args...)
}

func testdata(name string) string {
	p, _ := filepath.Abs(filepath.Join("testdata", name))
	return p
}

func wantCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

func wantContains(t *testing.T, what, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%s does not contain %q:\n%s", what, sub, s)
	}
}
