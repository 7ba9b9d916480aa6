package supervisor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The control socket is how `archangel stats` reads a running supervisor:
// a unix stream socket, one command line in, one JSON document out, then
// the server closes. Only the supervisor's own user and root may read it:
// the socket is 0600, bound in a private directory (so it is never
// reachable with wider permissions, whatever the umask), and every peer's
// SO_PEERCRED is checked (unix(7)).
//
// Commands: "stats" and "stats json" both answer a Status as JSON. An
// unknown command or a refused peer gets {"error": "..."}.

// ControlTimeout bounds one control connection: reading the command and
// writing the answer.
const ControlTimeout = 2 * time.Second

const maxControlLine = 256

// sunPathMax is the size of sockaddr_un.sun_path, NUL included (unix(7)).
const sunPathMax = 108

// Status is the control socket's answer: the Snapshot, plus the figures
// only the serving process can compute when asked. Field names are a
// stable interface (`archangel stats --json`): add, never rename.
type Status struct {
	Snapshot
	PID          int     `json:"pid"`            // the supervisor (archangel) process
	UptimeNS     uint64  `json:"uptime_ns"`      // since the control socket started
	QueueDepth   uint64  `json:"queue_depth"`    // received, not yet answered (approximate)
	CacheHitRate float64 `json:"cache_hit_rate"` // hits / lookups, 0..1
	Targets      int     `json:"targets"`        // processes below the supervisor
	Error        string  `json:"error,omitempty"`
}

// QueueDepth is the number of notifications received and not yet answered
// or vanished. The three counters are read one after the other, so it is
// approximate; it is never negative.
func (s Snapshot) QueueDepth() uint64 {
	done := s.Answered + s.Vanished
	if done >= s.Received {
		return 0
	}
	return s.Received - done
}

// CacheHitRate is hits / (hits + misses), 0 before the first lookup.
func (s Snapshot) CacheHitRate() float64 {
	look := s.CacheHits + s.CacheMisses
	if look == 0 {
		return 0
	}
	return float64(s.CacheHits) / float64(look)
}

// newStatus completes a snapshot with what this process knows.
func newStatus(snap Snapshot, started time.Time) Status {
	pid := os.Getpid()
	return Status{
		Snapshot:     snap,
		PID:          pid,
		UptimeNS:     uint64(time.Since(started)),
		QueueDepth:   snap.QueueDepth(),
		CacheHitRate: snap.CacheHitRate(),
		Targets:      countDescendants(pid),
	}
}

// DefaultControlDir is where supervisors put their control sockets:
// /run/archangel for root, $XDG_RUNTIME_DIR/archangel otherwise, and
// $TMPDIR/archangel-UID when XDG_RUNTIME_DIR is unset.
func DefaultControlDir() string {
	if os.Geteuid() == 0 {
		return "/run/archangel"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "archangel")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("archangel-%d", os.Geteuid()))
}

// DefaultControlPath is the control socket of the supervisor with process
// ID pid: DefaultControlDir()/PID.sock.
func DefaultControlPath(pid int) string {
	return filepath.Join(DefaultControlDir(), strconv.Itoa(pid)+".sock")
}

// ParseControlPath returns the PID of a DefaultControlPath name ("1234.sock").
func ParseControlPath(name string) (int, bool) {
	s, ok := strings.CutSuffix(filepath.Base(name), ".sock")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(s)
	return pid, err == nil && pid > 0 && strconv.Itoa(pid) == s
}

type controlServer struct {
	path    string
	ln      *net.UnixListener
	dev     uint64 // the socket inode we linked at path, so Close
	ino     uint64 // removes ours and not a successor's
	snap    func() Snapshot
	logger  *slog.Logger
	self    int // euid
	started time.Time

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	once   sync.Once
	err    error
}

// ServeControl serves snap on a unix socket at path (see the top of this
// file for the protocol). It returns once the socket accepts connections;
// Close stops serving and removes the socket. The server only ever calls
// snap, from its own goroutines: it never blocks the notification loop.
//
// When path is in DefaultControlDir, that directory is created 0700; an
// existing one must belong to this user (or root) and not be writable by
// others. A stale socket (nobody listening) at path is replaced; a live
// one or any other file is an error.
func ServeControl(path string, snap func() Snapshot, logger *slog.Logger) (io.Closer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	path = filepath.Clean(path)
	if len(path) >= sunPathMax {
		return nil, fmt.Errorf("control socket %s: path too long (%d bytes, the limit is %d)\n\thint: name a shorter path with --control-socket", path, len(path), sunPathMax-1)
	}
	dir := filepath.Dir(path)
	if dir == DefaultControlDir() {
		if err := ensurePrivateDir(dir); err != nil {
			return nil, err
		}
		sweepStale(dir)
	}
	ln, st, err := listenPrivate(path)
	if err != nil {
		return nil, err
	}
	s := &controlServer{
		path:    path,
		ln:      ln,
		dev:     st.Dev,
		ino:     st.Ino,
		snap:    snap,
		logger:  logger,
		self:    os.Geteuid(),
		started: time.Now(),
		conns:   map[net.Conn]struct{}{},
	}
	s.wg.Go(s.accept)
	logger.Info("control socket ready", "path", path)
	return s, nil
}

// ensurePrivateDir creates dir 0700, or checks that an existing dir is a
// directory (not a symlink) owned by this user or root and not writable by
// group or others: nobody else may replace our socket.
func ensurePrivateDir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		if err != nil {
			return fmt.Errorf("create control socket directory: %w", err)
		}
		return nil
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("check control socket directory: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("control socket directory %s is not a directory\n\thint: remove it, or name another socket with --control-socket", dir)
	case st == nil || (int(st.Uid) != os.Geteuid() && st.Uid != 0):
		return fmt.Errorf("control socket directory %s belongs to another user\n\thint: remove it, or name another socket with --control-socket", dir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("control socket directory %s is writable by others (mode %v)\n\thint: chmod 0700 %s", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// listenPrivate binds the socket at path without a window in which it is
// reachable with wider permissions than 0600: bind and chmod inside a new
// 0700 directory next to path, then link(2) it into place (which, unlike
// rename, never replaces an existing file).
func listenPrivate(path string) (*net.UnixListener, *syscall.Stat_t, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".ctl")
	if err != nil {
		return nil, nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	bound := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, *syscall.Stat_t, error) {
		ln.Close()
		return nil, nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(bound, 0o600); err != nil {
		return fail(err)
	}
	err = os.Link(bound, path)
	if errors.Is(err, fs.ErrExist) {
		if rerr := removeStaleSocket(path); rerr != nil {
			ln.Close()
			return nil, nil, rerr
		}
		err = os.Link(bound, path)
	}
	if err != nil {
		return fail(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fail(err)
	}
	return ln, &st, nil
}

// removeStaleSocket removes the socket at path if nobody listens on it.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil // gone meanwhile: link again
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket %s: a file that is not a socket is in the way\n\thint: remove it, or name another socket with --control-socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s is in use by a running supervisor\n\thint: name another socket with --control-socket", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s: check the existing socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
	}
	return nil
}

// sweepStale removes the sockets in dir that nobody listens on any more:
// those of supervisors killed before they could clean up (SIGKILL). A
// socket counts as stale when connect(2) is refused, not when its PID looks
// unused, which would be wrong across PID namespaces.
func sweepStale(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if _, ok := ParseControlPath(e.Name()); !ok || e.Type() != fs.ModeSocket {
			continue
		}
		p := filepath.Join(dir, e.Name())
		before, err := os.Lstat(p)
		if err != nil {
			continue
		}
		c, err := net.DialTimeout("unix", p, 100*time.Millisecond)
		if err == nil {
			c.Close()
			continue
		}
		if after, err2 := os.Lstat(p); errors.Is(err, syscall.ECONNREFUSED) && err2 == nil && os.SameFile(before, after) {
			_ = os.Remove(p)
		}
	}
}

func (s *controlServer) accept() {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.logger.Warn("degraded: control socket stopped", "path", s.path, "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// serve answers one connection.
func (s *controlServer) serve(c *net.UnixConn) {
	_ = c.SetDeadline(time.Now().Add(ControlTimeout))
	cred, err := peerCred(c)
	if err != nil {
		s.logger.Warn("control connection: read peer credentials", "err", err)
		return
	}
	if !peerAllowed(cred, s.self) {
		s.logger.Warn("control connection refused: another user", "pid", cred.Pid, "uid", cred.Uid)
		writeJSON(c, Status{Error: fmt.Sprintf("permission denied: uid %d may not read a supervisor run by uid %d", cred.Uid, s.self)})
		return
	}
	cmd, err := readCommand(c)
	if err != nil {
		s.logger.Debug("control connection: read command", "pid", cred.Pid, "err", err)
		return
	}
	switch cmd {
	case "stats", "stats json":
		writeJSON(c, newStatus(s.snap(), s.started))
	default:
		writeJSON(c, Status{Error: fmt.Sprintf("unknown command %q (want \"stats\" or \"stats json\")", cmd)})
	}
}

func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, gerr
}

// peerAllowed: the supervisor's own user and root may read its figures
// (they show command names and denied calls of the supervised processes).
// The credentials are the peer's at connect(2) (SO_PEERCRED, unix(7)).
func peerAllowed(cred *unix.Ucred, self int) bool {
	return cred != nil && (cred.Uid == 0 || int64(cred.Uid) == int64(self))
}

// readCommand reads one line (the newline may be missing at EOF).
func readCommand(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxControlLine), maxControlLine)
	line, err := br.ReadString('\n')
	switch {
	case err == nil, errors.Is(err, io.EOF) && line != "":
		return strings.Join(strings.Fields(line), " "), nil
	case errors.Is(err, io.EOF):
		return "", errors.New("no command")
	}
	return "", err
}

func writeJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	_, _ = w.Write(append(b, '\n'))
}

// Close stops serving, waits for the connections in progress (each is
// bounded by ControlTimeout) and removes the socket if it is still ours.
func (s *controlServer) Close() error {
	s.once.Do(func() {
		var st syscall.Stat_t
		if syscall.Stat(s.path, &st) == nil && st.Dev == s.dev && st.Ino == s.ino {
			if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.err = fmt.Errorf("remove control socket: %w", err)
			}
		}
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		if err := s.ln.Close(); err != nil && s.err == nil && !errors.Is(err, net.ErrClosed) {
			s.err = err
		}
		s.wg.Wait()
	})
	return s.err
}

// countDescendants counts the processes below pid (see walkDescendants).
func countDescendants(pid int) int {
	n := 0
	walkDescendants(pid, func(int) { n++ })
	return n
}

// startServers starts what Cmd.ControlSocket and Cmd.MetricsAddr ask for.
// The control socket is on by default (archangel run), so failing to
// create it degrades with a warning; the metrics endpoint is asked for
// explicitly, so failing to bind it is an error.
func startServers(controlPath, metricsAddr string, snap func() Snapshot, logger *slog.Logger) ([]io.Closer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var servers []io.Closer
	if controlPath != "" {
		c, err := ServeControl(controlPath, snap, logger)
		if err != nil {
			logger.Warn("degraded: no control socket; `archangel stats` cannot read this run", "err", err)
		} else {
			servers = append(servers, c)
		}
	}
	if metricsAddr != "" {
		m, err := ServeMetrics(metricsAddr, snap, logger)
		if err != nil {
			closeAll(servers)
			return nil, err
		}
		servers = append(servers, m)
	}
	return servers, nil
}

// closeAll stops what startServers started.
func closeAll(servers []io.Closer) {
	for _, s := range servers {
		_ = s.Close()
	}
}
