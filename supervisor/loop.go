package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor/patterns"
	"github.com/archangel-sandbox/archangel/supervisor/rules"
)

// Supervisor answers the notifications of one listener.
type Supervisor struct {
	listener int
	profile  *profiles.Profile
	program  *filter.Program
	mode     profiles.Mode
	logger   *slog.Logger
	events   *eventLog
	decider  *decider
	stats    *Stats
	rules    *pathRules           // nil without [files]/[network]/[exec] rules
	creds    *kernel.CredSwitcher // created on the receive loop's thread
	canon    canonicalizer
	patterns *patterns.Engine // nil unless [supervisor] patterns = true
	learner  *Learner         // learning run: record everything, enforce nothing
	asker    *Asker           // learn --ask: a person decides new kinds of events
	analysis *analysisTier    // [analyzer] model tier; nil without one
	learned  *learnedSet      // the learned overlay's path and address verdicts (learned.go); nil without
	overlay  *OverlayWriter   // records the model's verdicts for the overlay (learned.go); nil without
	seq      *seqFeeder       // the sequence model's per-thread view (seqtap.go); nil without one
	dec      *decoder
	// seqRespond: [analyzer] sequence is "deny" or "kill".
	seqRespond bool
	// launchPID is the shim's PID: its execs, while it still runs
	// archangel's own binary, are the launch itself, not the target's.
	launchPID atomic.Int32
	selfExe   string // archangel's own executable, which the shim runs
	syncWake  bool
	done      chan struct{}
	stopOnce  sync.Once
	stopping  atomic.Bool
	tid       atomic.Int64 // the receive loop's thread
}

// newSupervisor prepares everything that does not need the listener, so
// that the launch handshake (listener received → go-ahead) stays short.
func newSupervisor(p *profiles.Profile, prog *filter.Program, mode profiles.Mode, logger *slog.Logger, events io.Writer, set *rules.Set) (*Supervisor, error) {
	s := &Supervisor{
		listener: -1,
		profile:  p,
		program:  prog,
		mode:     mode,
		logger:   logger,
		stats:    newStats(p.Name, mode),
		done:     make(chan struct{}),
	}
	s.decider = newDecider(p, mode, cacheSize(p))
	s.selfExe, _ = os.Executable()
	tier, err := newAnalysisTier(p.Analyzer, s.decider.def)
	if err != nil {
		return nil, err
	}
	s.analysis = tier
	s.seqRespond = p.Analyzer.Sequence == "deny" || p.Analyzer.Sequence == "kill"
	if tier != nil {
		tier.seqThread = s.seqThread
	}
	s.stats.analysis = s.analysis
	s.decider.analysis = tier != nil
	s.dec = newDecoder()
	if set != nil {
		s.rules = newPathRules(p, set)
		s.decider.paths = s.rules
	}
	s.stats.cache = s.decider.cache
	// Active rules: the profile's syscall rules plus its path, network and
	// exec rules; the version moves when host names re-resolve.
	if set != nil {
		s.stats.SetRules(len(p.Rules)+len(set.Explain()), set.Version())
	} else {
		s.stats.SetRules(len(p.Rules), 1)
	}
	if events != nil {
		s.events = newEventLog(events)
	}
	return s, nil
}

// attach takes the listener and configures it.
func (s *Supervisor) attach(listener int) error {
	s.listener = listener
	if err := kernel.SetSyncWakeUp(listener); err != nil {
		if !errors.Is(err, kernel.ErrUnsupported) {
			return fmt.Errorf("set SYNC_WAKE_UP: %w", err)
		}
		s.logger.Warn("degraded: notification round trips may be bimodal", "err", err)
		s.stats.Degrade(fmt.Sprintf("SYNC_WAKE_UP unavailable (%v): round trips may be bimodal", err))
	} else {
		s.syncWake = true
	}
	return nil
}

func cacheSize(p *profiles.Profile) int {
	if p.Supervisor.CacheSize > 0 {
		return p.Supervisor.CacheSize
	}
	return 4096
}

func (s *Supervisor) start() {
	go s.loop()
	if s.rules != nil {
		go s.refreshRules()
	}
}

// stop ends the receive loop and closes the listener: any call still
// notified from now on fails with ENOSYS (the fail-closed behaviour of a
// listener without a reader).
func (s *Supervisor) stop() {
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		// The loop blocks in RECV, which a signal interrupts with EINTR
		// (never restarted). SIGURG is the Go runtime's own preemption
		// signal: its handler does nothing harmful to a thread in a raw
		// system call.
		deadline := time.Now().Add(2 * time.Second)
	wait:
		for {
			if tid := int(s.tid.Load()); tid != 0 {
				_ = unix.Tgkill(unix.Getpid(), tid, unix.SIGURG)
			}
			select {
			case <-s.done:
				break wait
			case <-time.After(time.Millisecond):
			}
			if time.Now().After(deadline) {
				s.logger.Warn("receive loop did not stop; abandoning it")
				break
			}
		}
		if s.listener >= 0 {
			unix.Close(s.listener)
		}
		if s.events != nil {
			s.events.flush()
		}
	})
}

// loop receives and answers notifications on one locked OS thread
// (kernel.NotifRecvInterruptible, kernel.NotifSendRaw).
func (s *Supervisor) loop() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(s.done)
	defer s.dec.close() // runs first: the decoder's kept /proc files
	s.tid.Store(int64(unix.Gettid()))
	s.creds = kernel.NewCredSwitcher()
	var n kernel.Notif
	var resp kernel.NotifResp
	for !s.stopping.Load() {
		err := kernel.NotifRecvInterruptible(s.listener, &n)
		if err != nil {
			switch {
			case err == unix.EINTR:
				continue
			case errors.Is(err, kernel.ErrNotifGone):
				// A notification that vanished, or — on kernels where RECV
				// stops blocking once the filter has no tasks left (6.18
				// answers ENOENT at once) — nobody left to notify. POLLHUP
				// tells the two apart.
				if noTargetsLeft(s.listener) {
					return
				}
				continue
			}
			s.logger.Error("supervision stopped: receive notification", "err", err)
			return
		}
		start := time.Now()
		s.stats.received.Add(1)
		if s.handle(&n, &resp) {
			s.stats.observe(time.Since(start))
			continue
		}
		err = kernel.NotifSendRaw(s.listener, &resp)
		s.stats.observe(time.Since(start))
		switch {
		case err == nil:
			s.stats.answered.Add(1)
		case errors.Is(err, kernel.ErrNotifGone):
			s.stats.vanished.Add(1)
		default:
			s.logger.Error("supervision stopped: answer notification", "err", err, "notif_id", n.ID)
			return
		}
	}
}

// handle decides one notification and fills resp. It returns true when
// the notification has been answered already (emulated open, a connect
// answered from its own goroutine) or is gone, so the loop sends nothing.
func (s *Supervisor) handle(n *kernel.Notif, resp *kernel.NotifResp) bool {
	if nr := n.Data.Nr; nr >= 0 && int(nr) < len(callSpecs) && callSpecs[nr].forget {
		// The call may change the caller's program or credentials
		// (IdentityCalls, always notified): what archangel knows of the
		// process is read afresh at its next notification.
		s.dec.mem.procs.forget(int(n.PID))
	}
	if s.learner != nil {
		return s.learn(n, resp)
	}
	d := s.decider.decide(n)
	*resp = kernel.NotifResp{ID: n.ID}
	var call *analyzer.Call
	pl := planContinue
	var canonical string
	if d.pointer {
		c, err := s.dec.decode(s.listener, n)
		switch {
		case errors.Is(err, kernel.ErrNotifGone):
			s.stats.vanished.Add(1)
			return true
		case err != nil:
			// The kernel would refuse these arguments itself (EFAULT,
			// ENOENT...), or archangel could not read them: fail closed.
			d = decision{action: profiles.ActionErrno, errno: profiles.Errno(answerErrno(err)), source: SourceUndecided,
				layer: SourceUndecided, rule: "decode: " + err.Error(), nocache: true}
		default:
			call = &c
			switch {
			case s.rules != nil && s.rules.needsCall(n.Data.Nr):
				d, pl, canonical = s.decideCall(call)
			case s.analysis != nil && call.Kind == analyzer.KindOther:
				// No pointer argument and no rule: the model decides on
				// the scalar arguments and the caller, so CONTINUE stays
				// safe for an allow.
				d = s.analysis.decide(call)
			default:
				d = s.decider.def
				d.nocache = true
			}
		}
	}
	if s.seqRespond && s.seq != nil {
		if t, ok := s.seqThread(int(n.PID)); ok && t.Anomalous {
			// [analyzer] sequence = "deny" or "kill": the thread's history
			// no longer looks like its program's; nothing it asks for is
			// let through (a kill is sent when the anomaly is found).
			d = decision{action: profiles.ActionErrno, errno: profiles.Errno(unix.EPERM), source: SourceSequence, layer: SourceSequence, nocache: true,
				rule: fmt.Sprintf("sequence model: thread anomalous (score %.2f > %.2f for %s)", t.Score, t.Threshold, t.Exe)}
			pl = planContinue
		}
	}
	if s.analysis != nil && call != nil && (d.action == profiles.ActionAllow || d.action == profiles.ActionLog) {
		s.analysis.noteAllowed(call)
	}
	if s.overlay != nil && call != nil && d.source == SourceAnalyzer {
		s.overlay.record(call, d) // evidence for the learned overlay (learned.go)
	}
	if s.patterns != nil && call != nil {
		if m, ok := s.observe(call, d); ok {
			d, pl = m, planContinue
		}
	}
	s.stats.count(d, n)
	if s.events != nil || s.logger.Enabled(context.Background(), slog.LevelDebug) {
		s.record(n, d, call)
	}
	if s.mode == profiles.ModeAudit {
		// Audit: decided and recorded, never blocked. CONTINUE is fine
		// here even for pointer arguments: nothing is being enforced.
		resp.Flags = kernel.RespFlagContinue
		return false
	}
	switch d.action {
	case profiles.ActionAllow, profiles.ActionLog:
		switch pl {
		case planOpen:
			c := *call
			c.Path = canonical
			creds, cerr := s.dec.mem.procs.creds(int(n.PID))
			if cerr != nil {
				// The thread is gone, or its credentials cannot be read:
				// open nothing on its behalf.
				resp.Error = -int32(unix.EPERM)
				return false
			}
			errno, err := s.emulateOpen(n, &c, creds)
			if errno == unix.ELOOP && call.Flags&unix.O_NOFOLLOW == 0 {
				// A symlink where the cached resolution saw none: resolve
				// afresh, decide again, and open once more.
				s.canon.fresh = true
				d2, pl2, canonical2 := s.decideCall(call)
				s.canon.fresh = false
				if pl2 != planOpen {
					s.stats.count(d2, n)
					if s.events != nil {
						s.record(n, d2, call)
					}
					resp.Error = -int32(d2.errno)
					if d2.errno == 0 {
						resp.Error = -int32(unix.EACCES)
					}
					return false
				}
				c.Path = canonical2
				errno, err = s.emulateOpen(n, &c, creds)
			}
			if err == nil && errno == 0 {
				s.stats.answered.Add(1)
				return true // answered by ADDFD + SEND
			}
			if errors.Is(err, kernel.ErrNotifGone) {
				s.stats.vanished.Add(1)
				return true
			}
			resp.Error = -int32(errno)
		case planConnect:
			return s.emulateConnect(n, call, resp)
		default:
			// planContinue: the verdict depended on the syscall number
			// and scalar arguments only, so the kernel re-reading pointer
			// arguments after CONTINUE cannot change it. planAdvisory: the
			// profile accepted that risk for this kind of call.
			resp.Flags = kernel.RespFlagContinue
		}
	case profiles.ActionKill:
		// SIGKILL first: it is pending before the call returns, so the
		// process never runs another instruction.
		_ = unix.Kill(int(n.PID), unix.SIGKILL)
		resp.Error = -int32(unix.EPERM)
	case profiles.ActionErrno:
		resp.Error = -int32(d.errno)
		if d.errno == 0 {
			resp.Error = -int32(unix.EPERM)
		}
	default: // undecidable: fail closed
		resp.Error = -int32(unix.EPERM)
	}
	return false
}

// noTargetsLeft reports whether the listener's filter has no tasks left
// (POLLHUP, seccomp_unotify(2)).
func noTargetsLeft(listener int) bool {
	fds := []unix.PollFd{{Fd: int32(listener), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLHUP != 0
}

// learn records a notification of a learning run and lets the call run.
func (s *Supervisor) learn(n *kernel.Notif, resp *kernel.NotifResp) bool {
	var call *analyzer.Call
	if nr := int(n.Data.Nr); nr >= 0 && nr < len(callSpecs) && callSpecs[nr].kind != analyzer.KindOther {
		c, err := s.dec.decode(s.listener, n)
		switch {
		case errors.Is(err, kernel.ErrNotifGone):
			s.stats.vanished.Add(1)
			return true
		case err == nil:
			call = &c
		}
	}
	name := syscallName(n.Data.Nr)
	d := decision{action: profiles.ActionAllow, source: SourceDefault, layer: SourceDefault, rule: "learning"}
	if s.asker != nil {
		switch ans, key := s.asker.ask(name, call); ans {
		case Deny:
			s.learner.deny(key)
			d = decision{action: profiles.ActionErrno, errno: 1, source: SourceRule, layer: SourceRule, rule: "refused while learning: " + key}
			s.stats.count(d, n)
			if s.events != nil {
				s.record(n, d, call)
			}
			*resp = kernel.NotifResp{ID: n.ID, Error: -int32(unix.EPERM)}
			return false
		case AllowOnce:
			d.rule = "allowed once while learning: " + key
			s.stats.count(d, n)
			*resp = kernel.NotifResp{ID: n.ID, Flags: kernel.RespFlagContinue}
			return false
		}
	}
	s.learner.observe(name, n.Data.Args, call)
	s.stats.count(d, n)
	if s.events != nil {
		s.record(n, d, call)
	}
	*resp = kernel.NotifResp{ID: n.ID, Flags: kernel.RespFlagContinue}
	return false
}
