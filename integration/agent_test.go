package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAgent runs `archangel agent` and hands it containers the way runc
// does (ociRuntimeVictim): the listener of a real filter and the container
// state over the agent's socket. The agent supervises each with the
// profile its metadata names, or its default; a profile it cannot serve
// leaves the container's notified calls failing, never allowed.
func TestAgent(t *testing.T) {
	requireNotify(t)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	deny := write("deny.toml", "[profile]\ndefault = \"allow\"\n[syscalls]\nnotify = [\"getppid\"]\n[supervisor]\ndefault = \"deny\"\n")
	allow := write("allow.toml", "[profile]\ndefault = \"allow\"\n[syscalls]\nnotify = [\"getppid\"]\n[supervisor]\ndefault = \"allow\"\n")
	withFiles := write("files.toml", "[profile]\ndefault = \"allow\"\n[syscalls]\nnotify = [\"getppid\"]\n[files]\nread = [\"/etc/**\"]\n[supervisor]\ndefault = \"allow\"\n")
	sock := filepath.Join(dir, "agent.sock")

	var stderr bytes.Buffer
	agent := exec.Command(archangelBin, "agent", "--socket", sock, "-p", deny, "--events-dir", dir)
	agent.Stderr = &stderr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer agent.Process.Kill()
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("agent socket never appeared\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, _ := os.Stat(sock); st.Mode().Perm() != 0o600 {
		t.Errorf("agent socket mode %v, want 0600", st.Mode().Perm())
	}

	container := func(id, metadata string) string {
		cmd := exec.Command(selfBin, append([]string{sock, deny, id, metadata}, "getpid", "getppid", "getppid")...)
		cmd.Env = append(os.Environ(), "ARCHANGEL_VICTIM=ociruntime")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("container %s: %v\n%s", id, err, out)
		}
		return string(out)
	}
	// The agent's default profile: its [supervisor] default denies.
	if out := container("ctr-deny", ""); strings.Count(out, "getppid: errno=EPERM") != 2 || !strings.Contains(out, "getpid: ret=") {
		t.Errorf("default profile: %s", out)
	}
	// The metadata names the profile.
	if out := container("ctr-allow", "profile="+allow); strings.Count(out, "getppid: ret=") != 2 {
		t.Errorf("profile from metadata: %s", out)
	}
	// A profile the agent cannot serve: the listener is closed, and the
	// notified calls fail instead of running.
	if out := container("ctr-files", "profile="+withFiles); strings.Count(out, "getppid: errno=ENOSYS") != 2 {
		t.Errorf("unservable profile: %s", out)
	}

	time.Sleep(200 * time.Millisecond) // the last container's end is noticed
	agent.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- agent.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("agent exited: %v\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("agent did not stop on SIGTERM\n%s", stderr.String())
	}
	log := stderr.String()
	for _, want := range []string{"container ctr-deny (pid", "container ctr-deny ended", "container ctr-allow ended", "ctr-files: profile", "not supported"} {
		if !strings.Contains(log, want) {
			t.Errorf("agent log lacks %q:\n%s", want, log)
		}
	}
	ev, err := os.ReadFile(filepath.Join(dir, "ctr-deny.jsonl"))
	if err != nil || !strings.Contains(string(ev), `"syscall":"getppid"`) || !strings.Contains(string(ev), `"verdict":"deny"`) {
		t.Errorf("ctr-deny events: %v\n%s", err, ev)
	}
}
