package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
)

// Supervisor answers the notifications of one listener.
type Supervisor struct {
	listener int
	wake     int // eventfd: stop the receive loop
	profile  *profiles.Profile
	program  *filter.Program
	mode     profiles.Mode
	logger   *slog.Logger
	events   *eventLog
	decider  *decider
	stats    *Stats
	syncWake bool
	done     chan struct{}
	stopOnce sync.Once
}

func newSupervisor(listener int, p *profiles.Profile, prog *filter.Program, mode profiles.Mode, logger *slog.Logger, events io.Writer) (*Supervisor, error) {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	s := &Supervisor{
		listener: listener,
		wake:     wake,
		profile:  p,
		program:  prog,
		mode:     mode,
		logger:   logger,
		stats:    newStats(p.Name, mode),
		done:     make(chan struct{}),
	}
	s.decider = newDecider(p, mode, cacheSize(p))
	s.stats.cache = s.decider.cache
	if events != nil {
		s.events = newEventLog(events)
	}
	if err := kernel.SetSyncWakeUp(listener); err != nil {
		if !errors.Is(err, kernel.ErrUnsupported) {
			unix.Close(wake)
			return nil, fmt.Errorf("set SYNC_WAKE_UP: %w", err)
		}
		logger.Warn("degraded: notification round trips may be bimodal", "err", err)
	} else {
		s.syncWake = true
	}
	return s, nil
}

func cacheSize(p *profiles.Profile) int {
	if p.Supervisor.CacheSize > 0 {
		return p.Supervisor.CacheSize
	}
	return 4096
}

func (s *Supervisor) start() {
	go s.loop()
}

// stop ends the receive loop and closes the listener: any call still
// notified from now on fails with ENOSYS (the fail-closed behaviour of a
// listener without a reader).
func (s *Supervisor) stop() {
	s.stopOnce.Do(func() {
		var one = []byte{1, 0, 0, 0, 0, 0, 0, 0}
		_, _ = unix.Write(s.wake, one)
		select {
		case <-s.done:
		case <-time.After(2 * time.Second):
			// The loop is stuck in RECV (a notification vanished between
			// poll and RECV and no target is left to notify again). The
			// thread is abandoned; closing the listener below still fails
			// every notified call closed.
			s.logger.Warn("receive loop did not stop; abandoning it")
		}
		unix.Close(s.listener)
		unix.Close(s.wake)
		if s.events != nil {
			s.events.flush()
		}
	})
}

// loop receives and answers notifications on one locked OS thread.
func (s *Supervisor) loop() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(s.done)
	fds := []unix.PollFd{{Fd: int32(s.listener), Events: unix.POLLIN}, {Fd: int32(s.wake), Events: unix.POLLIN}}
	var n kernel.Notif
	var resp kernel.NotifResp
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			s.logger.Error("supervision stopped: poll listener", "err", err)
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents&unix.POLLIN == 0 {
			if fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
				return // no targets left
			}
			continue
		}
		err := kernel.NotifRecv(s.listener, &n)
		if err != nil {
			if errors.Is(err, kernel.ErrNotifGone) {
				continue
			}
			s.logger.Error("supervision stopped: receive notification", "err", err)
			return
		}
		start := time.Now()
		s.stats.received.Add(1)
		s.handle(&n, &resp)
		err = kernel.NotifSend(s.listener, &resp)
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

// handle decides one notification and fills resp.
func (s *Supervisor) handle(n *kernel.Notif, resp *kernel.NotifResp) {
	d := s.decider.decide(n)
	*resp = kernel.NotifResp{ID: n.ID}
	s.stats.count(d, n)
	if s.events != nil || s.logger.Enabled(context.Background(), slog.LevelDebug) {
		s.record(n, d)
	}
	if s.mode == profiles.ModeAudit {
		// Audit: decided and recorded, never blocked. CONTINUE is fine
		// here even for pointer arguments: nothing is being enforced.
		resp.Flags = kernel.RespFlagContinue
		return
	}
	switch d.action {
	case profiles.ActionAllow, profiles.ActionLog:
		// The verdict depended on the syscall number and scalar arguments
		// only (decider.decide never reads target memory for an allow), so
		// the kernel re-reading pointer arguments after CONTINUE cannot
		// change it.
		resp.Flags = kernel.RespFlagContinue
	case profiles.ActionKill:
		// SIGKILL first: it is pending before the call returns, so the
		// process never runs another instruction.
		_ = unix.Kill(int(n.PID), unix.SIGKILL)
		resp.Error = -int32(unix.EPERM)
	case profiles.ActionErrno:
		resp.Error = -int32(d.errno)
	default: // undecidable: fail closed
		resp.Error = -int32(unix.EPERM)
	}
}
