package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor/patterns"
	"github.com/archangel-sandbox/archangel/supervisor/rules"
)

// Argument-aware decisions: the notified calls whose verdict depends on a
// path, an address or an argv the target owns. The call is decoded (paths,
// sockaddrs, argv read from target memory, then the notification ID
// re-validated), decided by the profile's [files], [network] and [exec]
// rules (supervisor/rules), and, when allowed, carried out without a race:
//
//	open family    the supervisor opens the checked, symlink-free path
//	               itself and installs the fd with ADDFD + SEND (emulate.go)
//	connect        the supervisor connects the target's own socket, taken
//	               with pidfd_getfd, to the checked address
//	anything else  the kernel would re-read the argument after the check
//	               (CONTINUE): allowed only for the kinds the profile lists
//	               in [supervisor] advisory, denied otherwise
//
// A deny is always safe. Audit mode decides, records and continues.

// pathRules is what the supervisor needs from the rule layer.
type pathRules struct {
	cur      atomic.Pointer[rules.Set]    // swapped when host names re-resolve
	kinds    [analyzer.KindChdir + 1]bool // kinds that some rule can decide
	advisory [analyzer.KindChdir + 1]bool // kinds the profile accepts advisory allows for
	// landlockExec: the launcher applied the exec allow-list as a Landlock
	// ruleset, so an exec the rules allow is enforced by the kernel on the
	// file it executes.
	landlockExec bool
}

func newPathRules(p *profiles.Profile, set *rules.Set) *pathRules {
	r := &pathRules{}
	r.cur.Store(set)
	f, nw := p.Files, p.Network
	if len(f.Read)+len(f.Write)+len(f.Exec)+len(f.Deny) > 0 {
		for _, k := range []analyzer.Kind{analyzer.KindOpen, analyzer.KindStat, analyzer.KindExec, analyzer.KindCreate,
			analyzer.KindDelete, analyzer.KindRename, analyzer.KindAttr, analyzer.KindChdir} {
			r.kinds[k] = true
		}
	}
	if len(p.Exec.Rules) > 0 {
		r.kinds[analyzer.KindExec] = true
	}
	if len(nw.Connect)+len(nw.Bind)+len(nw.Deny) > 0 {
		r.kinds[analyzer.KindConnect], r.kinds[analyzer.KindBind] = true, true
	}
	if analysisConfigured(p) {
		// The model tier sees every call whose arguments it could judge.
		for k := analyzer.KindOpen; k <= analyzer.KindChdir; k++ {
			r.kinds[k] = true
		}
	}
	for k := range r.advisory {
		r.advisory[k] = slices.Contains(p.Supervisor.Advisory, analyzer.Kind(k).String())
	}
	return r
}

// needsCall reports whether notification nr must be decoded: some rule can
// decide its kind.
func (r *pathRules) needsCall(nr int32) bool {
	if r == nil || nr < 0 || int(nr) >= len(callSpecs) {
		return false
	}
	k := callSpecs[nr].kind
	return k != analyzer.KindOther && r.kinds[k]
}

// plan is how an allow is carried out.
type plan int

const (
	planContinue plan = iota // CONTINUE: the verdict did not depend on target memory, or audit
	planOpen                 // emulated open + ADDFD
	planConnect              // connect on the target's socket
	planAdvisory             // CONTINUE after a pointer check, accepted by the profile
)

// decideCall decides a decoded call with the rules, then settles how an
// allow would be carried out (or refuses it). An open is first decided on
// the cached resolution of its directory, which assumes the last
// component is no symlink; anything but an allow is decided again on a
// full resolution, so that a symlink to an allowed file is not refused.
func (s *Supervisor) decideCall(c *analyzer.Call) (decision, plan, string) {
	d, pl, cp := s.decideCallOnce(c)
	if c.Kind == analyzer.KindOpen && pl != planOpen && !s.canon.fresh {
		s.canon.fresh = true
		d, pl, cp = s.decideCallOnce(c)
		s.canon.fresh = false
	}
	return d, pl, cp
}

func (s *Supervisor) decideCallOnce(c *analyzer.Call) (decision, plan, string) {
	var canonical string
	var anc []rules.Ancestor
	set := s.rules.cur.Load()
	if c.Kind == analyzer.KindExec && set.AncestorDepth() > 0 {
		anc = ancestors(c.Process.PPID, set.AncestorDepth())
	}
	v := set.Decide(c, anc)
	if c.Kind == analyzer.KindOpen && !c.Truncated {
		// Rules match what the kernel will open: the path with every
		// symlink resolved (the emulated open refuses symlinks). Both the
		// written and the resolved path must pass; a deny of either wins.
		cp, err := s.canon.open(c.Path, c.Flags)
		if err != nil {
			return decision{action: profiles.ActionErrno, errno: profiles.Errno(errnoOf(err)), layer: SourceRule,
				rule: "resolve " + c.Path + ": " + err.Error(), nocache: true}, planContinue, ""
		}
		canonical = cp
		if cp != c.Path && !(v.Matched && v.Action != profiles.ActionAllow && v.Action != profiles.ActionLog) {
			cc := *c
			cc.Path = cp
			v = set.Decide(&cc, nil)
		}
	}
	if c.Kind == analyzer.KindConnect && c.Addr == nil && !v.Matched {
		// sendmsg/sendmmsg naming no peer (a connected or paired socket):
		// no address to decide on, but msg_name lives in target memory
		// and could name one when the kernel reads it again.
		if s.rules.advisory[analyzer.KindConnect] {
			return decision{action: profiles.ActionAllow, source: SourceRule, layer: SourceRule, nocache: true,
				rule: c.Name + " naming no peer [advisory]"}, planAdvisory, ""
		}
		return decision{action: profiles.ActionErrno, errno: profiles.Errno(unix.EACCES), source: SourceRule, layer: SourceRule, nocache: true,
			rule: c.Name + " naming no peer: its msg_name is in target memory, so the kernel could send elsewhere; add \"connect\" to [supervisor] advisory to accept it"}, planContinue, ""
	}
	d := s.decider.def
	d.nocache = true
	d.rule = "no [files]/[network]/[exec] rule matched: [supervisor] default"
	if !v.Matched && !c.Truncated {
		if ld, ok := s.learned.lookup(c); ok {
			d = ld // the model's verdict from earlier runs (learned.go)
		} else if s.analysis != nil && !s.modelSkips(c) {
			// No rule speaks: the model tier, within its budget.
			d = s.analysis.decide(c)
		}
	}
	if v.Matched {
		d = decision{action: v.Action, errno: v.Errno, source: SourceRule, layer: SourceRule, rule: v.Rule, nocache: true}
		if v.Note != "" {
			d.rule += " (" + v.Note + ")"
		}
	}
	if c.Truncated && (d.action == profiles.ActionAllow || d.action == profiles.ActionLog) {
		return decision{action: profiles.ActionErrno, errno: profiles.Errno(unix.ENAMETOOLONG), layer: SourceRule,
			rule: "argument longer than archangel reads: never allowed on a truncated value", nocache: true}, planContinue, ""
	}
	if d.action == profiles.ActionErrno && !v.Matched && (c.Kind == analyzer.KindExec || c.Kind == analyzer.KindOpen && c.Flags&unix.O_CREAT == 0) {
		// Denied only because nothing allows it: a file that does not
		// exist answers ENOENT, as without archangel, so that PATH and
		// library searches go on to the next directory.
		if _, err := os.Lstat(c.Path); errors.Is(err, os.ErrNotExist) {
			d.errno = profiles.Errno(unix.ENOENT)
		}
	}
	if d.action != profiles.ActionAllow && d.action != profiles.ActionLog {
		return d, planContinue, ""
	}
	switch {
	case c.Kind == analyzer.KindOpen:
		return d, planOpen, canonical
	case c.Kind == analyzer.KindConnect && c.Name == "connect" && c.Addr != nil && sockaddrOf(c.Addr) != nil:
		return d, planConnect, ""
	case c.Kind == analyzer.KindExec && s.rules.landlockExec && v.Matched && v.Safety == rules.RaceFree:
		d.rule += " [Landlock]"
		return d, planContinue, ""
	case s.rules.advisory[c.Kind]:
		d.rule += " [advisory]"
		return d, planAdvisory, ""
	}
	return decision{action: profiles.ActionErrno, errno: profiles.Errno(unix.EACCES), layer: SourceRule, nocache: true,
		rule: fmt.Sprintf("%s allowed by %q, but archangel cannot carry out a %s allow without a race; add %q to [supervisor] advisory to accept a checked-then-continued call",
			c.Name, d.rule, c.Kind, c.Kind.String())}, planContinue, ""
}

// modelSkips reports whether c is an exec the model tier is not asked
// about: the shim's execve of the command, the launch archangel itself
// performs (archangel's own binary, perhaps in a temp directory, starting
// a program looks like nothing a workload does), or an exec of a path
// that does not exist.
func (s *Supervisor) modelSkips(c *analyzer.Call) bool {
	if c.Kind != analyzer.KindExec {
		return false
	}
	if _, err := os.Lstat(c.Path); errors.Is(err, os.ErrNotExist) {
		// A PATH search trying a directory that has no such program:
		// the exec fails with ENOENT whatever the model says.
		return true
	}
	if c.Process.PID != int(s.launchPID.Load()) {
		return false
	}
	return s.selfExe != "" && strings.TrimSuffix(c.Process.Exe, " (deleted)") == s.selfExe
}

func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EACCES
}

// canonicalizer resolves open paths to what the kernel will open, with a
// cache of resolved directories. The cache needs no invalidation for
// safety: the emulated open refuses symlinks (RESOLVE_NO_SYMLINKS), so a
// stale entry — a directory that became a symlink, or a final component
// that is one — makes the open fail with ELOOP, and the supervisor then
// resolves the path afresh (fresh=true), decides again and retries once.
type canonicalizer struct {
	dirs  map[string]string
	fresh bool // resolve everything, bypass the cache (the retry)
}

const maxCachedDirs = 4096

// open returns the path the kernel would open for p with flags: every
// symlink resolved, except the last component's under O_NOFOLLOW or
// O_CREAT|O_EXCL. Outside the retry, the last component is assumed not to
// be a symlink.
func (cz *canonicalizer) open(p string, flags uint64) (string, error) {
	final := !cz.fresh || flags&unix.O_NOFOLLOW != 0 || flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL
	if !final {
		return canonicalPath(p)
	}
	dir, base := splitPath(p)
	cd, ok := cz.dirs[dir]
	if !ok || cz.fresh {
		var err error
		if cd, err = canonicalPath(dir); err != nil {
			return "", err
		}
		if cz.dirs == nil || len(cz.dirs) >= maxCachedDirs {
			cz.dirs = make(map[string]string)
		}
		cz.dirs[dir] = cd
	}
	if base == "" {
		return cd, nil
	}
	if cd == "/" {
		return "/" + base, nil
	}
	return cd + "/" + base, nil
}

func splitPath(p string) (string, string) {
	i := len(p) - 1
	for i > 0 && p[i] != '/' {
		i--
	}
	if i <= 0 {
		return "/", p[1:]
	}
	return p[:i], p[i+1:]
}

// sockaddrOf converts a decoded address to what connect(2) takes.
func sockaddrOf(a *analyzer.SockAddr) unix.Sockaddr {
	switch a.Family {
	case unix.AF_INET:
		if !a.Addr.Addr().Is4() && !a.Addr.Addr().Is4In6() {
			return nil
		}
		return &unix.SockaddrInet4{Port: int(a.Addr.Port()), Addr: a.Addr.Addr().Unmap().As4()}
	case unix.AF_INET6:
		return &unix.SockaddrInet6{Port: int(a.Addr.Port()), Addr: a.Addr.Addr().As16()}
	case unix.AF_UNIX:
		if a.Unnamed {
			return nil
		}
		if a.Abstract {
			return &unix.SockaddrUnix{Name: "@" + a.Unix}
		}
		return &unix.SockaddrUnix{Name: a.Unix}
	}
	return nil
}

// emulateConnect connects the target's socket (its fd is connect's first
// argument) to the address that was checked, and answers n. A blocking
// socket may take long to connect, so the connect and the answer run on
// their own goroutine; the receive loop goes on. It reports whether the
// answer is taken care of (true) or resp must be sent by the caller.
func (s *Supervisor) emulateConnect(n *kernel.Notif, c *analyzer.Call, resp *kernel.NotifResp) bool {
	pidfd, err := kernel.PidfdOpen(c.Process.PID)
	if err != nil {
		resp.Error = -int32(unix.ESRCH)
		return false
	}
	fd, err := kernel.PidfdGetFD(pidfd, int(int32(c.Args[0])))
	pidfd.Close()
	if err != nil {
		// EBADF: not an fd in the target; anything else: we cannot act
		// for it, and fail closed.
		resp.Error = -int32(unix.EBADF)
		if !errors.Is(err, unix.EBADF) {
			resp.Error = -int32(unix.EPERM)
		}
		return false
	}
	sa := sockaddrOf(c.Addr)
	flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	do := func(r *kernel.NotifResp) {
		defer unix.Close(fd)
		for {
			err := unix.Connect(fd, sa)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				r.Error = -int32(errnoOf(err))
			}
			return
		}
	}
	if flags&unix.O_NONBLOCK != 0 {
		do(resp) // returns at once (EINPROGRESS for TCP)
		return false
	}
	r := *resp
	go func() {
		do(&r)
		if err := kernel.NotifSend(s.listener, &r); err == nil {
			s.stats.answered.Add(1)
		} else {
			s.stats.vanished.Add(1)
		}
	}()
	return true
}

// ancestors returns the parent chain from pid up, nearest first, at most
// depth long (comm and executable of each), for [[exec.rule]] parent
// conditions.
func ancestors(pid, depth int) []rules.Ancestor {
	var out []rules.Ancestor
	for i := 0; i < depth && pid > 1; i++ {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		out = append(out, rules.Ancestor{Comm: strings.TrimSpace(string(comm)), Exe: exe})
		ppid, ok := statusField(pid, "PPid")
		if !ok {
			break
		}
		pid, _ = strconv.Atoi(ppid)
	}
	return out
}

// refreshRules re-resolves the host names of [network] rules when they are
// due and swaps the new rule set in; the receive loop picks it up at its
// next decision. It returns when the supervisor stops.
func (s *Supervisor) refreshRules() {
	for {
		set := s.rules.cur.Load()
		next := set.NextRefresh()
		if next.IsZero() {
			return
		}
		select {
		case <-s.done:
			return
		case <-time.After(time.Until(next)):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ns, err := set.Refresh(ctx)
		cancel()
		if err != nil {
			s.logger.Warn("re-resolve [network] host names", "err", err)
		}
		if ns != nil && ns != set {
			s.rules.cur.Store(ns)
			s.stats.SetRules(len(s.profile.Rules)+len(ns.Explain()), ns.Version())
			s.logger.Info("rule set refreshed", "version", ns.Version())
		}
	}
}

// observe feeds a decoded call to the behaviour patterns and returns the
// decision of the strictest pattern it completes, when that is stricter
// than d.
func (s *Supervisor) observe(c *analyzer.Call, d decision) (decision, bool) {
	verdict := profiles.ActionUnset // the [supervisor] default decided
	if d.layer == SourceRule {
		verdict = d.action
	}
	denied := d.action == profiles.ActionErrno || d.action == profiles.ActionKill
	ms := s.patterns.Observe(patterns.Event{Call: c, Time: time.Now(), Verdict: verdict, Denied: denied, Tree: s.tree(c.Process.PPID)})
	best := -1
	for i, m := range ms {
		if m.Verdict == profiles.ActionKill || best < 0 && m.Verdict == profiles.ActionErrno {
			best = i
		}
	}
	if best < 0 {
		return d, false
	}
	m := ms[best]
	if d.action == profiles.ActionKill || d.action == profiles.ActionErrno && m.Verdict != profiles.ActionKill {
		return d, false // already as strict
	}
	return decision{action: m.Verdict, errno: profiles.Errno(unix.EPERM), source: SourcePattern, layer: SourcePattern, nocache: true,
		rule: fmt.Sprintf("pattern %s (risk %.2f): %s", m.Pattern, m.Risk, strings.Join(m.Steps, " -> "))}, true
}

// tree returns the sandboxed ancestors of a process, nearest first: PIDs
// up to (not including) the supervisor.
func (s *Supervisor) tree(ppid int) []int {
	self := os.Getpid()
	var out []int
	for pid := ppid; pid > 1 && pid != self && len(out) < 32; {
		out = append(out, pid)
		v, ok := statusField(pid, "PPid")
		if !ok {
			break
		}
		pid, _ = strconv.Atoi(v)
	}
	return out
}
