package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Real servers under their built-in profiles (profiles/builtin/nginx.toml,
// redis.toml): started in the foreground on a free loopback port, with
// config and data in t.TempDir(), exercised from outside, then stopped with
// SIGTERM to archangel, which forwards it.

// srvFreePort returns a loopback TCP port nobody listens on right now.
func srvFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// srvProcess is archangel running a server.
type srvProcess struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
	err    error
}

// srvStart starts `archangel run --no-summary -p profile -- argv...` in dir
// with HOME and TMPDIR set to dir; the process is killed at cleanup if the
// test did not stop it.
func srvStart(t *testing.T, dir, profile string, argv ...string) *srvProcess {
	t.Helper()
	cmd := exec.Command(archangelBin, append([]string{"run", "--no-summary", "-p", profile, "--"}, argv...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "TMPDIR="+dir)
	p := &srvProcess{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *srvProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitPort waits up to 10 s for port to accept connections, failing early
// if archangel exits.
func (p *srvProcess) waitPort(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if p.exited() {
			t.Fatalf("archangel exited before port %d answered (%v)\noutput:\n%s", port, p.err, p.stderr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d did not answer within 10 s: %v\noutput:\n%s", port, err, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM to archangel and requires it to exit within 10 s with
// one of the codes in want.
func (p *srvProcess) stop(t *testing.T, want ...int) {
	t.Helper()
	if p.exited() {
		t.Fatalf("archangel exited while the server was in use (%v)\noutput:\n%s", p.err, p.stderr)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("archangel still running 10 s after SIGTERM\noutput:\n%s", p.stderr)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		code = ee.ExitCode()
	} else if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	for _, w := range want {
		if code == w {
			return
		}
	}
	t.Fatalf("archangel exit status %d after SIGTERM, want one of %v\noutput:\n%s", code, want, p.stderr)
}

// srvRequireProfileDenies checks with `profile explain` that profile keeps
// mount out in the kernel and denies /etc/shadow and ~/.ssh in the
// supervisor.
func srvRequireProfileDenies(t *testing.T, profile, home string) {
	t.Helper()
	env := []string{"HOME=" + home}
	r := archangel(t, env, "profile", "explain", profile, "mount")
	wantCode(t, r, 0)
	wantContains(t, "explain mount", r.stdout, "kernel: mount deny")
	for _, path := range []string{"/etc/shadow", filepath.Join(home, ".ssh", "id_ed25519")} {
		r := archangel(t, env, "profile", "explain", profile, "openat", "0", "0", "0", "--path", path)
		wantCode(t, r, 0)
		wantContains(t, "explain openat "+path, r.stdout, "supervisor: deny")
		wantContains(t, "explain openat "+path, r.stdout, "files.deny")
	}
}

func TestServiceNginx(t *testing.T) {
	requireNotify(t)
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/nginx"); err2 != nil {
			t.Skip("skipped: nginx is not installed (scripts/setup.sh installs it)")
		}
		bin = "/usr/sbin/nginx"
	}
	if bin, err = filepath.EvalSymlinks(bin); err != nil || bin != "/usr/sbin/nginx" {
		t.Skipf("skipped: nginx is %s, the profile's exec allow-list names /usr/sbin/nginx", bin)
	}
	dir := t.TempDir()
	srvRequireProfileDenies(t, "nginx", dir)

	// The prefix is the working directory: docroot, logs and temp paths
	// under it, as the profile expects. `user root;` because the tree is
	// 0700 root (t.TempDir): the profile allows the uid drop either way.
	// master_process off: see the profile's @connect comment.
	for _, d := range []string{"html", "logs", "temp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	body := "hello from nginx under archangel\n"
	if err := os.WriteFile(filepath.Join(dir, "html", "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	port := srvFreePort(t)
	conf := fmt.Sprintf(`user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log %[1]s/logs/access.log;
    client_body_temp_path %[1]s/temp/body;
    proxy_temp_path %[1]s/temp/proxy;
    fastcgi_temp_path %[1]s/temp/fastcgi;
    uwsgi_temp_path %[1]s/temp/uwsgi;
    scgi_temp_path %[1]s/temp/scgi;
    sendfile on;
    server {
        listen 127.0.0.1:%[2]d;
        root %[1]s/html;
    }
}
`, dir, port)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := srvStart(t, dir, "nginx", bin, "-p", dir, "-c", confPath, "-g", "daemon off; master_process off;")
	p.waitPort(t, port)

	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if err != nil {
			t.Fatalf("GET %s: %v\noutput:\n%s", path, err, p.stderr)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if code, got := get("/index.html"); code != 200 || got != body {
		logs, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
		t.Fatalf("GET /index.html: %d %q, want 200 %q\nerror.log:\n%s\noutput:\n%s", code, got, body, logs, p.stderr)
	}
	if code, _ := get("/missing"); code != 404 {
		t.Fatalf("GET /missing: %d, want 404", code)
	}
	// nginx exits 0 on SIGTERM (fast shutdown).
	p.stop(t, 0)
	if _, err := os.Stat(filepath.Join(dir, "nginx.pid")); !os.IsNotExist(err) {
		t.Errorf("nginx.pid not removed at exit (unlink refused?): %v", err)
	}
	if logs, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log")); bytes.Contains(logs, []byte("[alert]")) || bytes.Contains(logs, []byte("[emerg]")) {
		t.Errorf("error.log has alerts:\n%s", logs)
	}
	if acc, _ := os.ReadFile(filepath.Join(dir, "logs", "access.log")); !strings.Contains(string(acc), "GET /index.html") {
		t.Errorf("access.log does not record the request:\n%s", acc)
	}
}

func TestServiceRedis(t *testing.T) {
	requireNotify(t)
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("skipped: redis-server is not installed (scripts/setup.sh installs it)")
	}
	// Debian's redis-server is a symlink to redis-check-rdb (one binary
	// that looks at argv[0]): exec it by the name the profile allows.
	if server != "/usr/bin/redis-server" {
		t.Skipf("skipped: redis-server is %s, the profile's exec allow-list names /usr/bin/redis-server", server)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("skipped: redis-cli is not installed (scripts/setup.sh installs it)")
	}
	dir := t.TempDir()
	srvRequireProfileDenies(t, "redis", dir)

	port := srvFreePort(t)
	p := srvStart(t, dir, "redis", server, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--dir", dir, "--save", "", "--appendonly", "no")
	p.waitPort(t, port)

	// redis-cli runs outside archangel: the client is not what is tested.
	rcli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(cli, append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(port)}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s\nserver output:\n%s", args, err, out, p.stderr)
		}
		return strings.TrimSpace(string(out))
	}
	value := "archangel-" + fmt.Sprint(port)
	if got := rcli("SET", "greeting", value); got != "OK" {
		t.Fatalf("SET: %q, want OK\nserver output:\n%s", got, p.stderr)
	}
	if got := rcli("GET", "greeting"); got != value {
		t.Fatalf("GET: %q, want %q\nserver output:\n%s", got, value, p.stderr)
	}
	// A snapshot: written to a temp file in --dir, renamed into place.
	if got := rcli("SAVE"); got != "OK" {
		t.Fatalf("SAVE: %q, want OK\nserver output:\n%s", got, p.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "dump.rdb")); err != nil {
		t.Fatalf("SAVE left no dump.rdb: %v\nserver output:\n%s", err, p.stderr)
	}
	// redis shuts down cleanly on SIGTERM and exits 0.
	p.stop(t, 0)
	wantContains(t, "server output", p.stderr.String(), "ready to exit, bye bye")
}
