package supervisor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The sandboxed tree lives in a cgroup v2 of its own, so that it can be
// killed as one (cgroup.kill, Linux 5.14): no process escapes by forking
// or daemonizing, whether archangel ends the run or dies. A process that
// survives archangel would otherwise keep running, with every notified
// call failing ENOSYS; a small watchdog process (archangel re-executed,
// outside the cgroup) holds the read end of a pipe whose write end only
// archangel holds: EOF without a "done" byte means archangel is gone, and
// the watchdog kills the cgroup and removes it.

// WatchdogArg is the hidden first argument of the watchdog process.
const WatchdogArg = "__archangel-watchdog"

type treeCgroup struct {
	dir string
	fd  int // O_PATH|O_DIRECTORY of dir, for clone3(CLONE_INTO_CGROUP)
}

// newTreeCgroup creates a cgroup below archangel's own in the cgroup v2
// hierarchy. It fails when there is no writable cgroup v2 with
// cgroup.kill (no delegation, cgroup v1 only, Linux < 5.14).
func newTreeCgroup() (*treeCgroup, error) {
	mount, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	own, err := ownCgroup2Path()
	if err != nil {
		return nil, err
	}
	name := "archangel-" + strconv.Itoa(os.Getpid())
	var lastErr error
	for _, parent := range []string{filepath.Join(mount, own), mount} {
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			lastErr = err
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
			os.Remove(dir)
			return nil, fmt.Errorf("cgroup.kill: %w (needs Linux >= 5.14)", err)
		}
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			os.Remove(dir)
			return nil, err
		}
		return &treeCgroup{dir: dir, fd: fd}, nil
	}
	return nil, fmt.Errorf("create a cgroup: %w", lastErr)
}

func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ... mount-point ... - fstype source options
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if fields := strings.Fields(pre); len(fields) >= 5 {
			return fields[4], nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy mounted")
}

func ownCgroup2Path() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("not in a cgroup v2 hierarchy")
}

// kill kills every process in the cgroup.
func (c *treeCgroup) kill() error {
	return os.WriteFile(filepath.Join(c.dir, "cgroup.kill"), []byte("1"), 0)
}

// remove waits (briefly) for the cgroup to empty and removes it.
func (c *treeCgroup) remove() {
	unix.Close(c.fd)
	for i := 0; i < 200; i++ {
		if err := os.Remove(c.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watchdog is the process that kills the tree if archangel dies.
type watchdog struct {
	proc *os.Process
	w    *os.File // archangel's end: "done" then close, or EOF by death
}

func startWatchdog(self string, cg *treeCgroup) (*watchdog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	proc, err := os.StartProcess(self, []string{self, WatchdogArg, cg.dir}, &os.ProcAttr{
		Files: []*os.File{nil, nil, nil, r},
		// Its own session: the terminal's signals are not for it.
		Sys: &unix.SysProcAttr{Setsid: true},
	})
	if err != nil {
		w.Close()
		return nil, err
	}
	return &watchdog{proc: proc, w: w}, nil
}

// stop tells the watchdog the run ended normally and reaps it.
func (wd *watchdog) stop() {
	_, _ = wd.w.Write([]byte{'D'})
	wd.w.Close()
	_, _ = wd.proc.Wait()
}

// watchdogMain runs in the watchdog process.
func watchdogMain(dir string) int {
	f := os.NewFile(3, "archangel-watchdog")
	var buf [1]byte
	for {
		n, err := f.Read(buf[:])
		if n == 1 && buf[0] == 'D' {
			return 0 // archangel ended the run itself
		}
		if err != nil {
			break // EOF: archangel died
		}
	}
	cg := &treeCgroup{dir: dir, fd: -1}
	for i := 0; i < 50; i++ {
		if err := cg.kill(); err != nil {
			break
		}
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.events")); err != nil || bytes.Contains(b, []byte("populated 0")) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = os.Remove(dir)
	return 0
}
