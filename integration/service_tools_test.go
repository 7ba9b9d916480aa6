package integration

// The per-tool built-in profiles (python3, git, curl, build) run the real
// program and do its job, and refuse what they exist to refuse: secrets
// (/etc/shadow, ~/.ssh), programs outside their exec list, writes outside
// the work trees, peers off loopback, and the kernel's dangerous calls.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
)

// archangelIn is archangel (main_test.go) with the working directory set
// to dir, so that ${CWD} in a profile is dir, and without the caller's git
// and make variables (GIT_DIR of a hook, MAKEFLAGS of `make test`).
func archangelIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, archangelBin, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, "MAKE") && !strings.HasPrefix(kv, "MFLAGS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
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

// toolEnv is a fresh work tree, $TMPDIR and $HOME for one tool test; the
// home holds a private key the profiles must keep out of reach.
type toolEnv struct {
	work, tmp, home, key string
	env                  []string
}

func newToolEnv(t *testing.T) toolEnv {
	t.Helper()
	e := toolEnv{work: t.TempDir(), tmp: t.TempDir(), home: t.TempDir()}
	e.key = filepath.Join(e.home, ".ssh", "id_ed25519")
	if err := os.MkdirAll(filepath.Dir(e.key), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.key, []byte("PRIVATE-KEY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.env = []string{"HOME=" + e.home, "TMPDIR=" + e.tmp, "LC_ALL=C", "LANG=C"}
	return e
}

// run runs argv under the built-in profile in the work tree.
func (e toolEnv) run(t *testing.T, profile string, extraEnv []string, argv ...string) result {
	t.Helper()
	args := append([]string{"run", "--no-summary", "-p", profile, "--"}, argv...)
	return archangelIn(t, e.work, append(append([]string{}, e.env...), extraEnv...), args...)
}

// requireTool skips when a program the profile names is missing, and (like
// requireNotify) when Landlock is: the profiles' exec allow-lists are
// race-free only through Landlock, so without it they refuse every program.
func requireTool(t *testing.T, paths ...string) {
	t.Helper()
	if _, err := kernel.LandlockABI(); err != nil {
		missing(t, "Landlock, which enforces the profile's exec allow-list: "+err.Error())
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("skipped: %s is not installed (%v); the profile names it by exact path", p, err)
		}
	}
}

func wantStdout(t *testing.T, r result, want string) {
	t.Helper()
	if r.stdout != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s\nstderr:\n%s", r.stdout, want, r.stderr)
	}
}

// dangerous are the calls every per-tool profile must refuse in the
// kernel: whole groups (every member) and single calls.
var dangerous = []string{
	"@mount", "@module", "@reboot", "@swap", "@raw-io", "@clock",
	"@cpu-emulation", "@obsolete",
	"bpf", "perf_event_open", "keyctl", "add_key", "request_key",
	"userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
	"kexec_load", "kexec_file_load",
}

// wantDangerousDenied compiles the built-in profile name exactly as
// archangel does and runs the BPF program on each dangerous call: every
// one must be denied or killed by the kernel, never allowed, logged or
// handed to the supervisor. Then `archangel profile explain NAME mount`
// must say the same.
func wantDangerousDenied(t *testing.T, name string) {
	t.Helper()
	data, ok := profiles.Builtin(name)
	if !ok {
		t.Fatalf("no built-in profile %q", name)
	}
	p, err := profiles.Parse("builtin:"+name+".toml", data)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	prog, err := filter.Compile(p, filter.Options{Arch: filter.ArchAMD64, Mode: profiles.ModeEnforce})
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	var calls []string
	for _, d := range dangerous {
		if strings.HasPrefix(d, "@") {
			m, ok := profiles.Group(d)
			if !ok {
				t.Fatalf("unknown group %s", d)
			}
			calls = append(calls, m...)
		} else {
			calls = append(calls, d)
		}
	}
	checked := 0
	for _, c := range calls {
		nr, ok := profiles.SyscallNr(c)
		if !ok {
			continue // a group member with no x86-64 number
		}
		ret, err := prog.Run(filter.Data{Nr: int32(nr), Arch: filter.AuditArchX8664})
		if err != nil {
			t.Fatalf("%s: run filter on %s: %v", name, c, err)
		}
		if a, _ := filter.Decode(ret); a != profiles.ActionErrno && a != profiles.ActionKill {
			t.Errorf("profile %s: %s gets action %v in the kernel, want deny or kill", name, c, a)
		}
		checked++
	}
	if checked < 40 {
		t.Fatalf("profile %s: only %d dangerous calls checked", name, checked)
	}
	r := archangel(t, nil, "profile", "explain", name, "mount")
	wantCode(t, r, 0)
	wantContains(t, "explain mount", r.stdout, "kernel: mount deny")
}

func TestPython3Profile(t *testing.T) {
	requireNotify(t)
	requireTool(t, "/usr/bin/python3")
	wantDangerousDenied(t, "python3")
	e := newToolEnv(t)
	script := `import json, re, hashlib, os, subprocess, sys, tempfile
d = json.loads('{"a": [1, 2, 3]}')
print(json.dumps(d, sort_keys=True), re.sub(r"\d", "x", "a1b2"), hashlib.sha256(b"abc").hexdigest()[:16])
with open("out.txt", "w") as f:
    f.write("written\n")
os.mkdir("sub")
os.rename("out.txt", "moved.txt")
print(open("moved.txt").read().strip(), sorted(os.listdir(".")))
with tempfile.NamedTemporaryFile(dir=None) as t:
    t.write(b"x"); t.flush()
    print("tmp", os.path.dirname(t.name) == os.environ["TMPDIR"])
print("child", subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True).stdout.strip())
`
	if err := os.WriteFile(filepath.Join(e.work, "job.py"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, "python3", nil, "/usr/bin/python3", "job.py")
	wantCode(t, r, 0)
	wantStdout(t, r, `{"a": [1, 2, 3]} axbx ba7816bf8f01cfea
written ['job.py', 'moved.txt', 'sub']
tmp True
child 42
`)

	// What the profile refuses, each through Python: the secrets, a program
	// outside the exec list, a write and an unlink outside the work trees,
	// and mount(2) for real (on a directory of our own, so that a broken
	// filter would mount nothing that matters; undone below if it did).
	mnt := t.TempDir()
	_, hostErr := os.Stat("/etc/hostname")
	refuse := fmt.Sprintf(`import ctypes, os, subprocess
def try_(what, f):
    try:
        f(); print(what, "ALLOWED")
    except OSError as e:
        print(what, "refused", e.errno)
try_("shadow", lambda: open("/etc/shadow").read())
try_("ssh-key", lambda: open(%q).read())
try_("exec-sh", lambda: subprocess.run(["/bin/sh", "-c", "true"]))
try_("write-etc", lambda: open("/etc/archangel-it-python3", "w"))
try_("unlink-etc", lambda: os.unlink("/etc/hostname"))
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.mount(b"none", %q.encode(), b"tmpfs", 0, None)
print("mount", rc, ctypes.get_errno())
`, e.key, mnt)
	r = e.run(t, "python3", nil, "/usr/bin/python3", "-c", refuse)
	if strings.Contains(r.stdout, "mount 0") {
		syscall.Unmount(mnt, 0)
	}
	wantCode(t, r, 0)
	wantStdout(t, r, `shadow refused 13
ssh-key refused 13
exec-sh refused 1
write-etc refused 1
unlink-etc refused 1
mount -1 1
`)
	if _, err := os.Stat("/etc/archangel-it-python3"); err == nil {
		os.Remove("/etc/archangel-it-python3")
		t.Fatal("python3 created a file in /etc")
	}
	if _, err := os.Stat("/etc/hostname"); hostErr == nil && err != nil {
		t.Fatalf("/etc/hostname is gone: %v", err)
	}
}

func TestGitProfile(t *testing.T) {
	requireNotify(t)
	requireTool(t, "/usr/bin/git")
	wantDangerousDenied(t, "git")
	e := newToolEnv(t)
	gitconfig := "[user]\n\tname = Archangel Test\n\temail = it@example.org\n[init]\n\tdefaultBranch = main\n"
	if err := os.WriteFile(filepath.Join(e.home, ".gitconfig"), []byte(gitconfig), 0o644); err != nil {
		t.Fatal(err)
	}
	// Pin the commit dates so that the hashes are the same every run, and
	// keep the caller's git environment (hooks, GIT_DIR...) out.
	env := []string{"GIT_AUTHOR_DATE=2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2024-01-01T00:00:00Z",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0"}
	git := func(args ...string) result {
		t.Helper()
		return e.run(t, "git", env, append([]string{"/usr/bin/git"}, args...)...)
	}
	step := func(args ...string) {
		t.Helper()
		r := git(args...)
		wantCode(t, r, 0)
	}
	step("init", "-q", "repo")
	if err := os.WriteFile(filepath.Join(e.work, "repo", "a.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	step("-C", "repo", "add", "a.txt")
	step("-C", "repo", "commit", "-q", "-m", "first")
	r := git("-C", "repo", "log", "--format=%s %an")
	wantCode(t, r, 0)
	wantStdout(t, r, "first Archangel Test\n")
	// Clone of a local repository by path: git runs upload-pack through sh.
	step("clone", "-q", "repo", "clone")
	r = git("-C", "clone", "log", "--format=%s")
	wantCode(t, r, 0)
	wantStdout(t, r, "first\n")
	if b, err := os.ReadFile(filepath.Join(e.work, "clone", "a.txt")); err != nil || string(b) != "hello\n" {
		t.Fatalf("cloned a.txt: %q, %v", b, err)
	}
	// A work tree under $TMPDIR is as good as one under the working directory.
	step("clone", "-q", filepath.Join(e.work, "repo"), filepath.Join(e.tmp, "clone2"))
	r = git("-C", filepath.Join(e.tmp, "clone2"), "rev-parse", "--abbrev-ref", "HEAD")
	wantCode(t, r, 0)
	wantStdout(t, r, "main\n")

	// Secrets through git: hashing a file reads it.
	for _, secret := range []string{"/etc/shadow", e.key} {
		r = git("hash-object", secret)
		if r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
			t.Fatalf("git hash-object %s: code %d\nstdout %s\nstderr %s", secret, r.code, r.stdout, r.stderr)
		}
	}
	// ~/.gitconfig is read, not written.
	r = git("config", "--global", "core.editor", "evil")
	if r.code == 0 {
		t.Fatalf("git config --global wrote ~/.gitconfig:\n%s", r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(e.home, ".gitconfig")); string(b) != gitconfig {
		t.Fatalf("~/.gitconfig changed:\n%s", b)
	}
	// A clone into a place outside the work trees is refused.
	r = git("clone", "-q", "repo", "/var/tmp/archangel-it-git-clone")
	os.RemoveAll("/var/tmp/archangel-it-git-clone")
	if r.code == 0 {
		t.Fatal("git cloned into /var/tmp")
	}
}

func TestCurlProfile(t *testing.T) {
	requireNotify(t)
	requireTool(t, "/usr/bin/curl")
	wantDangerousDenied(t, "curl")
	e := newToolEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", r.URL.Path)
	}))
	defer srv.Close()
	curl := func(args ...string) result {
		t.Helper()
		return e.run(t, "curl", nil, append([]string{"/usr/bin/curl", "-sS", "--max-time", "5"}, args...)...)
	}

	r := curl(srv.URL + "/a")
	wantCode(t, r, 0)
	wantStdout(t, r, "hello from /a\n")
	// localhost resolves (curl maps it to loopback itself).
	r = curl(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/b")
	wantCode(t, r, 0)
	wantStdout(t, r, "hello from /b\n")
	// Output files in the working directory and in $TMPDIR.
	r = curl("-o", "page.txt", srv.URL+"/c")
	wantCode(t, r, 0)
	r = curl("-o", filepath.Join(e.tmp, "page2.txt"), srv.URL+"/d")
	wantCode(t, r, 0)
	for f, want := range map[string]string{filepath.Join(e.work, "page.txt"): "hello from /c\n", filepath.Join(e.tmp, "page2.txt"): "hello from /d\n"} {
		if b, err := os.ReadFile(f); err != nil || string(b) != want {
			t.Fatalf("%s: %q, %v; want %q", f, b, err, want)
		}
	}

	// Secrets through curl: file:// URLs (CURLE_FILE_COULDNT_READ_FILE, 37)
	// and an upload of the key (CURLE_READ_ERROR, 26).
	r = curl("file:///etc/shadow")
	wantCode(t, r, 37)
	if r.stdout != "" {
		t.Fatalf("file:///etc/shadow printed %q", r.stdout)
	}
	r = curl("-T", e.key, srv.URL+"/upload")
	wantCode(t, r, 26)
	// Output outside the work trees (CURLE_WRITE_ERROR, 23).
	r = curl("-o", "/etc/archangel-it-curl", srv.URL+"/e")
	os.Remove("/etc/archangel-it-curl")
	wantCode(t, r, 23)
	// A peer off loopback (TEST-NET-1): refused by the supervisor at once
	// (CURLE_COULDNT_CONNECT, 7), not timed out (28).
	ev := filepath.Join(e.tmp, "ev.jsonl")
	r = archangelIn(t, e.work, e.env, "run", "--no-summary", "--events", ev, "-p", "curl", "--",
		"/usr/bin/curl", "-sS", "--connect-timeout", "3", "http://192.0.2.1:80/")
	wantCode(t, r, 7)
	found := false
	for _, x := range readEvents(t, ev) {
		if x["addr"] == "192.0.2.1:80" && x["verdict"] == "deny" {
			found = true
		}
	}
	if !found {
		t.Fatal("no event denies the connect to 192.0.2.1:80")
	}
}

func TestBuildProfile(t *testing.T) {
	requireNotify(t)
	requireTool(t, "/usr/bin/make", "/usr/bin/gcc", "/usr/bin/as", "/usr/bin/ld")
	wantDangerousDenied(t, "build")
	e := newToolEnv(t)
	files := map[string]string{
		"Makefile": `CC = gcc
CFLAGS = -O2 -Wall
hello: main.o greet.o
	$(CC) $(CFLAGS) -o $@ main.o greet.o
%.o: %.c greet.h
	$(CC) $(CFLAGS) -c $<
clean:
	rm -f hello *.o
leak:
	cat /etc/shadow
leak-key:
	cat $(HOME)/.ssh/id_ed25519
escape:
	touch /etc/archangel-it-build
.PHONY: clean leak leak-key escape
`,
		"greet.h": "void greet(const char *who);\n",
		"greet.c": "#include <stdio.h>\n#include \"greet.h\"\nvoid greet(const char *who) { printf(\"hello, %s\\n\", who); }\n",
		"main.c":  "#include \"greet.h\"\nint main(void) { greet(\"world\"); return 0; }\n",
	}
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(e.work, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var env []string // archangelIn drops the caller's MAKEFLAGS
	r := e.run(t, "build", env, "/usr/bin/make", "--no-print-directory")
	wantCode(t, r, 0)
	wantStdout(t, r, "gcc -O2 -Wall -c main.c\ngcc -O2 -Wall -c greet.c\ngcc -O2 -Wall -o hello main.o greet.o\n")
	out, err := exec.Command(filepath.Join(e.work, "hello")).Output()
	if err != nil || string(out) != "hello, world\n" {
		t.Fatalf("built program: %q, %v", out, err)
	}

	// Recipes that reach for secrets or outside the tree fail.
	r = e.run(t, "build", env, "/usr/bin/make", "--no-print-directory", "leak")
	wantCode(t, r, 2)
	wantContains(t, "make leak stderr", r.stderr, "cat: /etc/shadow: Permission denied")
	r = e.run(t, "build", env, "/usr/bin/make", "--no-print-directory", "leak-key")
	wantCode(t, r, 2)
	wantContains(t, "make leak-key stderr", r.stderr, "Permission denied")
	if strings.Contains(r.stdout, "PRIVATE") {
		t.Fatal("the key was read")
	}
	r = e.run(t, "build", env, "/usr/bin/make", "--no-print-directory", "escape")
	if _, err := os.Stat("/etc/archangel-it-build"); err == nil {
		os.Remove("/etc/archangel-it-build")
		t.Fatal("make created a file in /etc")
	}
	wantCode(t, r, 2)

	r = e.run(t, "build", env, "/usr/bin/make", "--no-print-directory", "clean")
	wantCode(t, r, 0)
	wantStdout(t, r, "rm -f hello *.o\n")
	if _, err := os.Stat(filepath.Join(e.work, "main.o")); !os.IsNotExist(err) {
		t.Fatalf("make clean left main.o: %v", err)
	}
}
