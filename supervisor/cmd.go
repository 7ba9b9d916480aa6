package supervisor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor/patterns"
	"github.com/archangel-sandbox/archangel/supervisor/rules"
)

// Exit statuses archangel uses for its own failures (STYLE.md "CLI").
const (
	ExitFailure     = 125 // archangel itself failed (bad profile, launch error)
	ExitCannotExec  = 126 // the command exists but cannot be executed
	ExitNotFound    = 127 // the command was not found
	exitSignalsBase = 128 // a command killed by signal N exits 128+N
)

// ExitError is a launch failure that maps to an exit status.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Cmd is a command to run under a compiled program, in the manner of
// os/exec.Cmd: set the fields, then Start and Wait, or Run.
type Cmd struct {
	Program *filter.Program
	Profile *profiles.Profile
	Mode    profiles.Mode // enforce or audit; must match the mode Program was compiled for

	// FailDegraded refuses to start the target when any mechanism is
	// degraded (no cgroup or watchdog, no pidfd_getfd, no Landlock for an
	// exec allow-list, no SYNC_WAKE_UP, no syscall tap for a sequence
	// model): Start fails with ExitFailure before the target's execve.
	FailDegraded bool

	Path string   // resolved by Command with exec.LookPath
	Args []string // Args[0] is the command name as given
	Env  []string // nil: the current environment
	Dir  string

	// Stdin, Stdout and Stderr are passed to the target as they are (a
	// terminal stays a terminal). nil means the corresponding os.Std*.
	Stdin, Stdout, Stderr *os.File

	Logger *slog.Logger // nil discards
	Events io.Writer    // JSON-lines event log; nil: none

	// ControlSocket is the unix socket `archangel stats` reads the live
	// figures from (ServeControl); "": none. MetricsAddr serves them to
	// Prometheus at http://ADDR/metrics (ServeMetrics); "": none.
	ControlSocket string
	MetricsAddr   string

	// ShimPath is the binary re-executed as the launcher shim; it must call
	// RunShimIfRequested. Empty: this executable.
	ShimPath string

	// Learner, when set, makes this a learning run: every notified call
	// is recorded and runs (see LearningProfile).
	Learner *Learner
	// Asker, with Learner, puts each new kind of event to a person.
	Asker *Asker

	// SeqRecorder, when set, records each thread's whole syscall stream
	// from the syscall tap for training sequence models (learn);
	// SeqModels, when set, scores each thread's stream with them (run).
	// See seqtap.go for the role in each mode.
	SeqRecorder *SeqRecorder
	SeqModels   *SeqModels

	// Overlay, when set, records the model tier's verdicts of this run as
	// evidence for the profile's learned overlay (learned.go); Close it
	// after Wait to write the file. The overlay's own verdicts come in
	// with Profile (profiles.ApplyOverlay).
	Overlay *OverlayWriter

	// ForwardSignals, when set, relays SIGINT, SIGTERM, SIGHUP and SIGQUIT
	// received by this process to the target.
	ForwardSignals bool

	proc     *os.Process
	pid      int
	sup      *Supervisor
	execErr  chan error
	lookErr  error
	waitOnce sync.Once
	result   Result
	waitErr  error
	sigc     chan os.Signal
	fgTTY    int // the terminal whose foreground we handed to the target, or -1

	handshakeStart time.Time
	degraded       []string    // mechanisms not available, reported in the summary
	cg             *treeCgroup // the tree's cgroup (cgroup.go), or nil
	wd             *watchdog
	landlockExec   bool        // the exec allow-list is enforced by Landlock
	servers        []io.Closer // control socket, metrics endpoint (startServers)
	seq            *seqFeeder  // the syscall tap feeding the sequence model (seqtap.go), or nil
}

// Command returns a Cmd that runs name with args under prog. A name
// without a slash is looked up in PATH now; a lookup failure is reported by
// Start as an *ExitError with status 127 (or 126 for a file that is not
// executable).
func Command(prog *filter.Program, p *profiles.Profile, name string, args ...string) *Cmd {
	c := &Cmd{Program: prog, Profile: p, Args: append([]string{name}, args...), fgTTY: -1}
	if prog != nil {
		c.Mode = prog.Mode
	}
	c.Path, c.lookErr = lookPath(name)
	return c
}

func lookPath(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil {
		if abs, aerr := filepath.Abs(path); aerr == nil {
			path = abs
		}
		return path, nil
	}
	var code = ExitNotFound
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, exec.ErrNotFound) && strings.Contains(name, "/") && fileExists(name) {
		code = ExitCannotExec
	}
	return "", &ExitError{Code: code, Err: fmt.Errorf("%s: %w", name, err)}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Result is how the target ended.
type Result struct {
	ExitCode int            // 0..255; 128+N for a signal
	Signal   syscall.Signal // the signal that killed it, or 0
	Stats    *Stats         // the supervisor's figures for the run
}

// Start launches the target: shim, filter, listener hand-off, supervisor,
// go-ahead. When it returns nil the target is running (or has failed to
// exec, which Wait reports as status 126/127).
func (c *Cmd) Start() error {
	if c.lookErr != nil {
		return c.lookErr
	}
	if c.Program == nil || c.Profile == nil {
		return &ExitError{Code: ExitFailure, Err: errors.New("start: Cmd needs a Program and a Profile")}
	}
	if err := kernel.ProbeUserNotif(); err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	shim := c.ShimPath
	if shim == "" {
		shim = "/proc/self/exe"
	}
	// Subreaper: descendants whose parents exit are reparented to us, so the
	// whole tree stays reapable and killable (prctl(2) PR_SET_CHILD_SUBREAPER).
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("become child subreaper: %w", err)}
	}
	// The listener is taken from the shim with pidfd_getfd where this
	// process may (then the shim never needs sendmsg, an alias of connect,
	// under the filter); otherwise the shim sends it with SCM_RIGHTS, which
	// only works when the profile allows sendmsg.
	scm := false
	if perr := kernel.ProbePidfdGetFD(); perr != nil {
		if pol := c.Profile.Policy("sendmsg"); pol.Action != profiles.ActionAllow || len(pol.Conds) > 0 {
			return &ExitError{Code: ExitFailure, Err: fmt.Errorf("hand over the seccomp listener: %v; the SCM_RIGHTS fallback needs sendmsg allowed unconditionally, and profile %q does not (%s)", perr, c.Profile.Name, pol.Source)}
		}
		logger.Warn("degraded: listener handed over with SCM_RIGHTS", "err", perr)
		scm = true
		c.degraded = append(c.degraded, fmt.Sprintf("listener handed over with SCM_RIGHTS (%v)", perr))
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("socketpair: %w", err)}
	}
	sock := pair[0]
	child := os.NewFile(uintptr(pair[1]), "archangel-shim")
	defer child.Close()
	ok := false
	defer func() {
		if !ok {
			unix.Close(sock)
			if c.sigc != nil {
				signal.Stop(c.sigc)
				c.sigc = nil
			}
		}
	}()

	if c.ForwardSignals {
		// Before the target exists, so that no signal sent to archangel
		// in between is lost; forward() waits for the PID.
		c.sigc = make(chan os.Signal, 8)
		signal.Notify(c.sigc, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	}
	set, err := c.compileRules()
	if err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	landlock := c.landlockMessage(set, logger)
	sup, err := newSupervisor(c.Profile, c.Program, c.Mode, logger, c.Events, set)
	if err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	if sup.rules != nil {
		sup.rules.landlockExec = c.landlockExec
		if sup.rules.kinds[analyzer.KindConnect] {
			if err := kernel.ProbePidfdGetFD(); err != nil {
				logger.Warn("degraded: connect allows fall back to deny", "err", err)
				c.degraded = append(c.degraded, fmt.Sprintf("pidfd_getfd unavailable (%v): connect allows fall back to deny", err))
			}
		}
	}
	sup.learner, sup.asker = c.Learner, c.Asker
	if c.Profile.Supervisor.Patterns {
		sup.patterns = patterns.Builtin(patterns.Env{HOME: envLookup(c.Env, "HOME")})
		sup.decider.decodeAll = true
	}
	if err := sup.startLearned(c.Overlay); err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	stdin, stdout, stderr := orStd(c.Stdin, os.Stdin), orStd(c.Stdout, os.Stdout), orStd(c.Stderr, os.Stderr)
	attr := &syscall.SysProcAttr{
		// The target dies with the supervisor: nothing runs unsupervised.
		Pdeathsig: syscall.SIGKILL,
		Setpgid:   true,
	}
	// A terminal stays usable: the target's process group becomes the
	// foreground one, so ^C and ^Z reach it as if it ran without archangel.
	if isForegroundTTY(stdin) {
		attr.Foreground = true
		attr.Ctty = 0
		c.fgTTY = int(stdin.Fd())
	}
	// The tree's own cgroup and the watchdog that kills it if archangel
	// dies (cgroup.go); without them, degrade and say so.
	if cg, err := newTreeCgroup(); err != nil {
		c.degraded = append(c.degraded, fmt.Sprintf("no cgroup for the sandboxed tree (%v): if archangel dies, the target is killed but its descendants keep running, every notified call failing with ENOSYS", err))
	} else if wd, err := startWatchdog(shim, cg); err != nil {
		cg.remove()
		c.degraded = append(c.degraded, fmt.Sprintf("no watchdog for the sandboxed tree (%v): if archangel dies, descendants of the target keep running", err))
	} else {
		c.cg, c.wd = cg, wd
		attr.UseCgroupFD, attr.CgroupFD = true, cg.fd
	}
	c.startSeqTap(sup)
	argv := append([]string{shim, ShimArg, c.Path}, c.Args...)
	proc, err := os.StartProcess(shim, argv, &os.ProcAttr{
		Dir:   c.Dir,
		Env:   c.Env,
		Files: []*os.File{stdin, stdout, stderr, child},
		Sys:   attr,
	})
	if err != nil {
		c.fgTTY = -1
		c.endTree()
		c.removeTree()
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("start launcher shim: %w", err)}
	}
	c.proc, c.pid = proc, proc.Pid
	sup.launchPID.Store(int32(proc.Pid))
	c.runSeqTap()

	listener, err := c.handshake(sock, scm, landlock)
	if err != nil {
		_ = proc.Kill()
		c.endTree()
		c.reapAll()
		c.removeTree()
		c.restoreForeground()
		return &ExitError{Code: ExitFailure, Err: err}
	}
	if err := sup.attach(listener); err != nil {
		unix.Close(listener)
		_ = proc.Kill()
		c.endTree()
		c.reapAll()
		c.removeTree()
		c.restoreForeground()
		return &ExitError{Code: ExitFailure, Err: err}
	}
	c.sup = sup
	for _, d := range c.degraded {
		sup.stats.Degrade(d)
	}
	if degraded := sup.stats.Snapshot().Degraded; c.FailDegraded && len(degraded) > 0 {
		// Before the go-ahead: the command never runs.
		unix.Close(listener)
		_ = proc.Kill()
		c.endTree()
		c.reapAll()
		c.removeTree()
		c.restoreForeground()
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("not started: %d mechanism(s) degraded (--fail-degraded): %s", len(degraded), strings.Join(degraded, "; "))}
	}
	sup.start()
	if c.Overlay != nil {
		c.Overlay.start(sup.done)
	}
	if c.sigc != nil {
		go c.forward()
	}
	// Go-ahead: the shim execs the target, whose execve is our first
	// notification. The control socket and metrics come up after it: the
	// target need not wait for them (about 300 µs), and if they fail the
	// tree is killed before it can have done much.
	_, err = unix.Write(sock, []byte{msgGo})
	sup.stats.HandshakeNS.Store(uint64(time.Since(c.handshakeStart)))
	if err != nil {
		_ = proc.Kill()
		sup.stop()
		c.endTree()
		c.reapAll()
		c.removeTree()
		c.restoreForeground()
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("send go-ahead: %w", err)}
	}
	if c.servers, err = startServers(c.ControlSocket, c.MetricsAddr, sup.stats.Snapshot, logger); err != nil {
		_ = proc.Kill()
		c.endTree()
		c.reapAll()
		sup.stop()
		c.removeTree()
		c.restoreForeground()
		return &ExitError{Code: ExitFailure, Err: err}
	}
	c.execErr = make(chan error, 1)
	go c.watchExec(sock)
	ok = true
	logger.Info("target started", "pid", c.pid, "profile", c.Profile.Name, "mode", c.Mode.String(), "path", c.Path)
	return nil
}

// landlockMessage returns the Landlock part of the launch: the exec
// allow-list, when the rules can express it as a Landlock ruleset (see
// rules.Set.LandlockPlan), which makes every exec allow race-free — the
// kernel checks the file it actually executes. Read and write stay with
// the supervisor (opens are carried out by it; see enforce.go).
func (c *Cmd) landlockMessage(set *rules.Set, logger *slog.Logger) []byte {
	var lr []kernel.LandlockRule
	handled := uint64(0)
	if set != nil {
		if plan, ok := set.LandlockPlan(); ok && plan.Handled&rules.FSExecute != 0 {
			abi, err := kernel.LandlockABI()
			if err == nil && abi < 2 {
				// Before ABI 2 every ruleset forbids renames and links
				// across directories (REFER cannot be granted): applying
				// one would break ordinary programs.
				err = fmt.Errorf("Landlock ABI %d < 2 (no LANDLOCK_ACCESS_FS_REFER)", abi)
			}
			if err != nil {
				logger.Warn("degraded: exec allow-list not enforced by Landlock", "err", err)
				c.degraded = append(c.degraded, fmt.Sprintf("exec allow-list not enforced by Landlock (%v): exec allows are advisory, refused unless [supervisor] advisory lists exec", err))
			} else {
				// REFER (reparenting by rename or link) is denied by every
				// ruleset unless granted: grant it everywhere, so that only
				// execution is restricted.
				handled = uint64(rules.FSExecute) | kernel.LandlockRefer
				lr = append(lr, kernel.LandlockRule{Path: "/", Access: kernel.LandlockRefer})
				for _, r := range plan.Rules {
					access := r.Access & rules.FSExecute
					if st, err := os.Stat(r.Path); err == nil && st.IsDir() {
						access &^= r.Exact // a literal grant names the directory, not what is below it
					}
					if access != 0 {
						lr = append(lr, kernel.LandlockRule{Path: r.Path, Access: uint64(access)})
					}
				}
				// In audit mode the decisions are what enforce mode would
				// make (exec allows carried out by Landlock), but nothing
				// is applied: audit never blocks.
				c.landlockExec = true
				if c.Mode == profiles.ModeAudit {
					handled, lr = 0, nil
				}
			}
		}
	}
	return encodeLandlock(handled, lr)
}

// compileRules compiles the profile's [files], [network] and [exec] rules
// for this launch (${CWD}, ${HOME}, ${TMPDIR} from the target's directory
// and environment; host names resolved now). nil when there are none.
func (c *Cmd) compileRules() (*rules.Set, error) {
	p := c.Profile
	if len(p.Files.Read)+len(p.Files.Write)+len(p.Files.Exec)+len(p.Files.Deny)+
		len(p.Network.Connect)+len(p.Network.Bind)+len(p.Network.Deny)+len(p.Exec.Rules) == 0 && !analysisConfigured(p) {
		return nil, nil
	}
	env := c.Env
	if env == nil {
		env = os.Environ()
	}
	lookup := func(k string) string { return envLookup(env, k) }
	cwd := c.Dir
	if cwd == "" {
		var err error
		if cwd, err = os.Getwd(); err != nil {
			return nil, fmt.Errorf("rules: working directory: %w", err)
		}
	}
	cwd, _ = filepath.Abs(cwd)
	e := rules.Env{CWD: cwd, HOME: lookup("HOME"), TMPDIR: lookup("TMPDIR")}
	if e.HOME == "" {
		e.HOME = "/nonexistent" // ${HOME} rules then match nothing real
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	set, err := rules.Compile(ctx, p, e, net.DefaultResolver)
	if err != nil {
		return nil, fmt.Errorf("compile rules of profile %q: %w", p.Name, err)
	}
	return set, nil
}

// envLookup finds k in env (nil: this process's environment), last wins.
func envLookup(env []string, k string) string {
	if env == nil {
		env = os.Environ()
	}
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], k+"="); ok {
			return v
		}
	}
	return ""
}

func orStd(f, std *os.File) *os.File {
	if f != nil {
		return f
	}
	return std
}

func isForegroundTTY(f *os.File) bool {
	pgrp, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// handshake sends the program to the shim and receives the listener.
func (c *Cmd) handshake(sock int, scm bool, landlock []byte) (int, error) {
	ready := make([]byte, 4096)
	n, err := unix.Read(sock, ready)
	switch {
	case err != nil:
		return -1, fmt.Errorf("wait for launcher shim: %w", err)
	case n == 0:
		return -1, errors.New("launcher shim exited before it was ready")
	case ready[0] == msgError:
		return -1, errors.New(string(ready[1:n]))
	case ready[0] != msgReady:
		return -1, fmt.Errorf("launcher shim sent unexpected message %q", ready[:n])
	}
	c.handshakeStart = time.Now()
	flags := uint32(kernel.FlagNewListener | kernel.FlagWaitKillableRecv)
	msg := make([]byte, 6, 6+len(c.Program.Bytes()))
	msg[0] = msgProgram
	binary.LittleEndian.PutUint32(msg[1:], flags)
	if scm {
		msg[5] = 1
	}
	msg = append(msg, c.Program.Bytes()...)
	if err := unix.Sendmsg(sock, msg, nil, nil, 0); err != nil {
		return -1, fmt.Errorf("send program to shim: %w", err)
	}
	if err := unix.Sendmsg(sock, landlock, nil, nil, 0); err != nil {
		return -1, fmt.Errorf("send Landlock plan to shim: %w", err)
	}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("receive listener: %w", err)
	}
	switch {
	case n == 0:
		return -1, errors.New("launcher shim exited before loading the filter")
	case buf[0] == msgError:
		return -1, errors.New(string(buf[1:n]))
	case buf[0] == kernel.ShimMsgListenerNr && n == 5 && !scm:
		pidfd, err := kernel.PidfdOpen(c.pid)
		if err != nil {
			return -1, err
		}
		defer pidfd.Close()
		return kernel.PidfdGetFD(pidfd, int(binary.LittleEndian.Uint32(buf[1:5])))
	case buf[0] != kernel.ShimMsgListener || !scm:
		return -1, fmt.Errorf("launcher shim sent unexpected message %q", buf[:n])
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(cmsgs) != 1 {
		return -1, fmt.Errorf("receive listener: bad control message (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&cmsgs[0])
	if err != nil || len(fds) != 1 {
		return -1, fmt.Errorf("receive listener: %d descriptors (%v)", len(fds), err)
	}
	return fds[0], nil
}

// watchExec learns whether the shim's execve succeeded: the socket closes
// on exec (close-on-exec), or the shim reports the errno.
func (c *Cmd) watchExec(sock int) {
	defer unix.Close(sock)
	buf := make([]byte, 16)
	n, err := unix.Read(sock, buf)
	switch {
	case err != nil || n == 0:
		c.execErr <- nil
	case buf[0] == kernel.ShimMsgExecFail && n >= 5:
		c.execErr <- fmt.Errorf("exec %s: %w", c.Path, syscall.Errno(binary.LittleEndian.Uint32(buf[1:5])))
	default:
		c.execErr <- nil
	}
}

func (c *Cmd) forward() {
	for sig := range c.sigc {
		if s, ok := sig.(syscall.Signal); ok {
			_ = unix.Kill(c.pid, s)
		}
	}
}

// Wait waits for the target to exit, then kills and reaps whatever it left
// behind, stops the supervisor and returns how the target ended. A
// non-zero exit status is not an error.
func (c *Cmd) Wait() (Result, error) {
	c.waitOnce.Do(func() {
		c.result, c.waitErr = c.wait()
	})
	return c.result, c.waitErr
}

func (c *Cmd) wait() (Result, error) {
	if c.proc == nil {
		return Result{}, errors.New("wait: command not started")
	}
	status, err := c.waitTarget()
	c.endTree()
	c.restoreForeground()
	if c.sigc != nil {
		signal.Stop(c.sigc)
		close(c.sigc)
	}
	// Whatever the target left running dies with it: nothing outlives the
	// run, supervised or not.
	c.reapAll()
	c.removeTree()
	c.sup.stop()
	closeAll(c.servers)
	res := Result{Stats: c.sup.stats}
	if err != nil {
		return res, err
	}
	switch {
	case status.Signaled():
		res.Signal = status.Signal()
		res.ExitCode = exitSignalsBase + int(res.Signal)
	default:
		res.ExitCode = status.ExitStatus()
	}
	if execErr := <-c.execErr; execErr != nil {
		return res, &ExitError{Code: res.ExitCode, Err: execErr}
	}
	return res, nil
}

// waitTarget reaps children until the target itself has exited.
func (c *Cmd) waitTarget() (unix.WaitStatus, error) {
	_ = c.proc.Release() // we reap with wait4 ourselves (see reapAll)
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for target: %w", err)
		}
		if pid == c.pid {
			return ws, nil
		}
		// An orphaned descendant reparented to us: reaped, nothing else.
	}
}

// endTree kills whatever is left in the tree's cgroup and lets the
// watchdog go (the run ended normally). Safe to call more than once.
func (c *Cmd) endTree() {
	if c.cg != nil {
		_ = c.cg.kill()
	}
	if c.wd != nil {
		c.wd.stop()
		c.wd = nil
	}
}

func (c *Cmd) removeTree() {
	c.stopSeqTap() // the tree is dead: every record is in the ring buffer
	if c.cg != nil {
		c.cg.remove()
		c.cg = nil
	}
}

// reapAll kills every remaining descendant and reaps them all.
func (c *Cmd) reapAll() {
	for i := 0; ; i++ {
		killDescendants()
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
		case err != nil: // ECHILD: nobody left
			return
		case pid == 0:
			time.Sleep(time.Millisecond)
		}
	}
}

// killDescendants sends SIGKILL to every process below this one, walking
// /proc/PID/task/TID/children (children is per thread).
func killDescendants() {
	walkDescendants(os.Getpid(), func(child int) { _ = unix.Kill(child, unix.SIGKILL) })
}

// walkDescendants calls fn for every process below pid, parents before
// their children, walking /proc/PID/task/TID/children (children are
// listed per creating thread; proc(5)). Processes that appear or exit
// during the walk may or may not be seen.
func walkDescendants(pid int, fn func(child int)) {
	stack := []int{pid}
	seen := map[int]bool{pid: true}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(p) + "/task")
		for _, t := range tasks {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/task/" + t.Name() + "/children")
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				child, err := strconv.Atoi(f)
				if err != nil || seen[child] {
					continue
				}
				seen[child] = true
				fn(child)
				stack = append(stack, child)
			}
		}
	}
}

// restoreForeground gives the terminal back to archangel's process group.
func (c *Cmd) restoreForeground() {
	if c.fgTTY < 0 {
		return
	}
	// We are in the background now: tcsetpgrp raises SIGTTOU unless ignored.
	signal.Ignore(unix.SIGTTOU)
	_ = unix.IoctlSetPointerInt(c.fgTTY, unix.TIOCSPGRP, unix.Getpgrp())
	signal.Reset(unix.SIGTTOU)
	c.fgTTY = -1
}

// Run starts the command and waits for it.
func (c *Cmd) Run() (Result, error) {
	if err := c.Start(); err != nil {
		return Result{ExitCode: exitCodeOf(err)}, err
	}
	return c.Wait()
}

// Stats returns the running supervisor's figures (nil before Start).
func (c *Cmd) Stats() *Stats {
	if c.sup == nil {
		return nil
	}
	return c.sup.stats
}

// PID is the target's process ID (the shim's, which execs the target).
func (c *Cmd) PID() int { return c.pid }

func exitCodeOf(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitFailure
}

// ExitCode maps an error from Start, Wait or Run to archangel's exit status.
func ExitCode(err error) int { return exitCodeOf(err) }
