package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor/rules"
)

// The learning loop (DESIGN.md, "learner"): the model tier's verdicts of a
// run are evidence, batched in memory by an OverlayWriter and merged into
// the profile's learned overlay (profiles.Overlay) every FlushInterval and
// when the run ends. At the next launch the overlay's scalar verdicts are
// in the kernel filter (profiles.ApplyOverlay) and its verdicts on a path
// or an address are answered here, by learnedSet, ahead of the model.
//
// Only verdicts whose key holds everything the verdict was given on are
// learned, so that a learned rule is never wider than the evidence:
//
//	scalar calls     the call's scalar arguments, each exactly (the
//	                 kernel filter cannot tell executables apart; the
//	                 overlay lists them in seen_in)
//	path calls       executable, call, path, and the access asked for
//	                 (read, write): an allow to read is no allow to write
//	address calls    executable, call, exact address and port
//
// Not learned: exec (the verdict may depend on argv), rename, link and
// symlink (two paths), truncated arguments, calls whose argument list
// archangel does not know (profiles.ScalarArgs), and every verdict that
// did not come from the model itself (rules, patterns, on_timeout).

// FlushInterval is how often a run's evidence is merged into the overlay
// file while the run goes on.
const FlushInterval = 30 * time.Second

// maxPendingEvidence bounds the evidence a run keeps in memory between
// flushes (distinct calls); past it, new calls are not recorded until the
// next flush.
const maxPendingEvidence = 4096

// learnedKey is the exact key of a verdict on a path or an address.
func learnedKey(exe, syscall, path, addr, access string) string {
	return exe + "\x00" + syscall + "\x00" + path + "\x00" + addr + "\x00" + access
}

// accessText names the access a path call asks for, as the overlay keeps
// it; ok is false for an exec access (never learned).
func accessText(a analyzer.Access) (string, bool) {
	switch a &^ analyzer.AccessExec {
	case analyzer.AccessRead:
		return "read", a&analyzer.AccessExec == 0
	case analyzer.AccessWrite:
		return "write", a&analyzer.AccessExec == 0
	case analyzer.AccessRead | analyzer.AccessWrite:
		return "read+write", a&analyzer.AccessExec == 0
	}
	return "", a&analyzer.AccessExec == 0
}

// exactAddr writes an address exactly (no port range, unlike the
// learner's endpointText): "127.0.0.1:8080", "[::1]:53", "unix:/run/x",
// "unix:@name"; "" for an unnamed one.
func exactAddr(a *analyzer.SockAddr) string {
	switch {
	case a == nil || a.Unnamed:
		return ""
	case a.Abstract:
		return "unix:@" + a.Unix
	case a.Unix != "":
		return "unix:" + a.Unix
	case a.Addr.IsValid():
		return netip.AddrPortFrom(a.Addr.Addr().Unmap(), a.Addr.Port()).String()
	}
	return ""
}

// learnable reports whether verdicts on calls of this kind and name are
// learned (see the list above).
func learnable(k analyzer.Kind, name string) bool {
	switch k {
	case analyzer.KindOther, analyzer.KindExec, analyzer.KindRename:
		return false
	case analyzer.KindCreate:
		return name != "symlink" && name != "symlinkat"
	}
	return true
}

// verdictOf turns a decided call into overlay evidence; ok is false for a
// call that is not learned.
func verdictOf(c *analyzer.Call, d decision, now time.Time) (profiles.LearnedVerdict, bool) {
	v := profiles.LearnedVerdict{Syscall: c.Name, Action: d.action, Errno: d.errno,
		Evidence: profiles.Evidence{Count: 1, First: now, Last: now, Source: "analyzer"}}
	switch d.action {
	case profiles.ActionAllow:
		v.Errno = 0
	case profiles.ActionErrno:
		if v.Errno == 0 {
			v.Errno = profiles.DefaultErrno
		}
	default:
		return v, false
	}
	if c.Truncated || c.Name == "" {
		return v, false
	}
	if c.Kind == analyzer.KindOther {
		idx, ok := profiles.ScalarArgs(c.Name)
		if !ok {
			return v, false
		}
		v.Scalar = true
		v.Args = make([]profiles.ArgCond, len(idx))
		for i, x := range idx {
			v.Args[i] = profiles.ArgCond{Index: x, Op: profiles.OpEq, Value: c.Args[x]}
		}
		if c.Process.Exe != "" {
			v.SeenIn = []string{c.Process.Exe}
		}
		return v, true
	}
	if !learnable(c.Kind, c.Name) || c.Path2 != "" || !filepath.IsAbs(c.Process.Exe) {
		return v, false
	}
	v.Exe = c.Process.Exe
	switch {
	case c.Kind == analyzer.KindConnect || c.Kind == analyzer.KindBind:
		v.Addr = exactAddr(c.Addr)
		if v.Addr == "" {
			return v, false
		}
	case c.Path != "":
		access, ok := accessText(c.Access)
		if !ok {
			return v, false
		}
		v.Path, v.Access = c.Path, access
	default:
		return v, false
	}
	return v, true
}

// ---- answering learned verdicts ----

// learnedSet answers the overlay's verdicts on paths and addresses
// (Profile.Learned) by exact key. Read-only once the run starts.
type learnedSet struct {
	byKey map[string]decision
}

// lookup returns the learned verdict for c, if there is one. Safe on a
// nil set.
func (l *learnedSet) lookup(c *analyzer.Call) (decision, bool) {
	if l == nil || c.Path2 != "" || !learnable(c.Kind, c.Name) {
		return decision{}, false
	}
	what, addr, access := c.Path, "", ""
	if c.Kind == analyzer.KindConnect || c.Kind == analyzer.KindBind {
		what, addr = "", exactAddr(c.Addr)
	} else {
		var ok bool
		if access, ok = accessText(c.Access); !ok {
			return decision{}, false
		}
	}
	d, ok := l.byKey[learnedKey(c.Process.Exe, c.Name, what, addr, access)]
	return d, ok
}

// startLearned prepares the learned verdicts of s's profile (checked
// against the [files], [network] and [exec] rules, which would decide
// them first: a contradiction is an error, never a weaker filter) and
// attaches w, which records this run's model verdicts (nil: none). Call it
// after newSupervisor, before the target starts.
func (s *Supervisor) startLearned(w *OverlayWriter) error {
	s.overlay = w
	p := s.profile
	if s.patterns != nil {
		// Behaviour patterns see only notified calls: a call they watch
		// must stay notified, never move into the kernel filter.
		watched := map[string]bool{}
		for _, name := range s.patterns.Syscalls() {
			watched[name] = true
		}
		if w != nil {
			w.mu.Lock()
			w.skip = watched
			w.mu.Unlock()
		}
		var errs []error
		for _, r := range p.Rules {
			if r.Learned != nil && slices.ContainsFunc(r.Syscalls, func(s string) bool { return watched[s] }) {
				errs = append(errs, &profiles.Error{Pos: r.Pos, Msg: fmt.Sprintf("learned rule on %s: the behaviour patterns ([supervisor] patterns = true) watch it, so it must stay notified", strings.Join(r.Syscalls, ", ")),
					Hint: "delete the entry, or run with --no-learned"})
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("learned overlay of profile %q: %w", p.Name, errors.Join(errs...))
		}
	}
	if len(p.Learned) == 0 {
		return nil
	}
	if s.rules == nil {
		// No rule decides notified calls here, but learned verdicts must
		// see them decoded: an empty rule set.
		set, err := rules.Compile(context.Background(), &profiles.Profile{Name: p.Name}, rules.Env{HOME: "/nonexistent"}, nil)
		if err != nil {
			return fmt.Errorf("learned verdicts: %w", err)
		}
		s.rules = newPathRules(p, set)
		s.decider.paths = s.rules
	}
	set := s.rules.cur.Load()
	l := &learnedSet{byKey: map[string]decision{}}
	var errs []error
	for _, v := range p.Learned {
		nr, ok := profiles.SyscallNr(v.Syscall)
		if !ok || nr >= len(callSpecs) || !learnable(callSpecs[nr].kind, v.Syscall) {
			errs = append(errs, &profiles.Error{Pos: v.Pos, Msg: fmt.Sprintf("archangel learns no verdicts on the arguments of %s, so this one would never be used", v.Syscall),
				Hint: "delete the entry, or run with --no-learned"})
			continue
		}
		kind := callSpecs[nr].kind
		c := analyzer.Call{Name: v.Syscall, Kind: kind, Path: v.Path, Process: analyzer.Process{Exe: v.Exe}}
		switch v.Access {
		case "read":
			c.Access = analyzer.AccessRead
		case "write":
			c.Access = analyzer.AccessWrite
		case "read+write":
			c.Access = analyzer.AccessRead | analyzer.AccessWrite
		}
		if v.Addr != "" {
			a, err := parseExactAddr(v.Addr)
			if err != nil {
				errs = append(errs, &profiles.Error{Pos: v.Pos, Msg: err.Error()})
				continue
			}
			c.Addr = a
		}
		if rv := set.Decide(&c, nil); rv.Matched && (rv.Action != v.Action || v.Action == profiles.ActionErrno && rv.Errno != v.Errno) {
			errs = append(errs, &profiles.Error{Pos: v.Pos,
				Msg:  fmt.Sprintf("learned verdict %s on %s conflicts with the profile, whose rule %s decides %s", v.Action, v.What(), rv.Rule, rv.Action),
				Hint: "delete the entry (the profile's rule stands), or change the profile if the learned verdict is right; --no-learned runs without the overlay"})
			continue
		}
		s.rules.kinds[kind] = true
		d := decision{action: v.Action, errno: v.Errno, source: SourceLearned, layer: SourceLearned, nocache: true,
			rule: fmt.Sprintf("learned: %s (%s)", v.Summary(), v.Pos)}
		l.byKey[learnedKey(v.Exe, v.Syscall, v.Path, v.Addr, v.Access)] = d
	}
	if len(errs) > 0 {
		return fmt.Errorf("learned overlay of profile %q: %w", p.Name, errors.Join(errs...))
	}
	s.learned = l
	return nil
}

// parseExactAddr reads back exactAddr's text.
func parseExactAddr(s string) (*analyzer.SockAddr, error) {
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		if name, ok := strings.CutPrefix(rest, "@"); ok {
			return &analyzer.SockAddr{Family: unix.AF_UNIX, Unix: name, Abstract: true}, nil
		}
		return &analyzer.SockAddr{Family: unix.AF_UNIX, Unix: rest}, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, fmt.Errorf("learned address %q: %v", s, err)
	}
	fam := uint16(unix.AF_INET6)
	if ap.Addr().Is4() {
		fam = unix.AF_INET
	}
	return &analyzer.SockAddr{Family: fam, Addr: ap}, nil
}

// ---- recording evidence ----

// OverlayWriter gathers a run's model verdicts and merges them into the
// overlay file at Path: evidence adds up per call, a verdict reached in
// profiles.MinEvidenceRuns runs becomes a rule, one that flips is refused
// (profiles.Overlay.Add, Settle). Writes are atomic (a temporary file
// renamed over the old one) and serialised between runs by a lock on the
// directory; an overlay that does not parse is left alone, and the error
// says so. Safe for concurrent use.
type OverlayWriter struct {
	path   string
	base   *profiles.Profile // the profile without its overlay: what Settle checks against
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	batch   map[string]*profiles.LearnedVerdict // by key and verdict, since the last flush
	counted map[string]bool                     // keys (and verdicts) this run has been counted for
	skip    map[string]bool                     // scalar calls the behaviour patterns watch: never learned
	dropped uint64

	flushMu  sync.Mutex
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	started  bool
}

// NewOverlayWriter returns a writer for the overlay at path of base, the
// profile as loaded without its overlay. logger may be nil.
func NewOverlayWriter(path string, base *profiles.Profile, logger *slog.Logger) *OverlayWriter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &OverlayWriter{path: path, base: base, logger: logger, now: time.Now,
		batch: map[string]*profiles.LearnedVerdict{}, counted: map[string]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Path is the overlay file the writer merges into.
func (w *OverlayWriter) Path() string { return w.path }

// record notes one model verdict (receive thread).
func (w *OverlayWriter) record(c *analyzer.Call, d decision) {
	v, ok := verdictOf(c, d, w.now().UTC().Truncate(time.Second))
	if !ok {
		return
	}
	key := v.Key() + "\x00" + v.Action.String() + v.Errno.String()
	w.mu.Lock()
	defer w.mu.Unlock()
	if v.Scalar && w.skip[v.Syscall] {
		return
	}
	e, ok := w.batch[key]
	if !ok {
		if len(w.batch) >= maxPendingEvidence {
			w.dropped++
			return
		}
		e = &v
		e.Count = 0
		w.batch[key] = e
	}
	e.Count++
	e.Last = v.Last
	if !w.counted[key] {
		w.counted[key] = true
		e.Runs++
	}
	for _, s := range v.SeenIn {
		if !slices.Contains(e.SeenIn, s) {
			e.SeenIn = append(e.SeenIn, s)
		}
	}
}

// run flushes every FlushInterval until Close (or until stop).
func (w *OverlayWriter) run(stop <-chan struct{}) {
	defer close(w.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-stop:
			return
		case <-t.C:
			if err := w.Flush(); err != nil {
				w.logger.Warn("learned overlay not written", "path", w.path, "err", err)
			}
		}
	}
}

// start runs the periodic flush until Close or until stop is closed.
func (w *OverlayWriter) start(stop <-chan struct{}) {
	w.mu.Lock()
	w.started = true
	w.mu.Unlock()
	go w.run(stop)
}

// Close stops the periodic flush and merges what is left into the file.
func (w *OverlayWriter) Close() error {
	w.stopOnce.Do(func() {
		close(w.stop)
		w.mu.Lock()
		started := w.started
		w.mu.Unlock()
		if started {
			<-w.done
		}
	})
	return w.Flush()
}

// Dropped is how many calls were not recorded because the batch was full.
func (w *OverlayWriter) Dropped() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

// Flush merges the evidence gathered since the last flush into the
// overlay file, promotes and refuses entries (profiles.Overlay.Settle) and
// writes it atomically. With no new evidence it writes nothing.
func (w *OverlayWriter) Flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	batch := w.batch
	w.batch = map[string]*profiles.LearnedVerdict{}
	w.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := w.merge(batch)
	if err != nil {
		// Keep the evidence for the next flush.
		w.mu.Lock()
		for k, v := range batch {
			if e, ok := w.batch[k]; ok {
				e.Count += v.Count
				e.Runs += v.Runs
			} else {
				w.batch[k] = v
			}
		}
		w.mu.Unlock()
	}
	return err
}

func (w *OverlayWriter) merge(batch map[string]*profiles.LearnedVerdict) error {
	dir := filepath.Dir(w.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("learned overlay: %w", err)
	}
	// Runs of the same profile merge one after the other.
	lock, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("learned overlay: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("learned overlay: lock %s: %w", dir, err)
	}
	ov, err := profiles.LoadOverlay(w.path)
	if err != nil {
		return fmt.Errorf("learned overlay %s is not valid, so archangel leaves it as it is: %w", w.path, err)
	}
	if ov == nil {
		ov = profiles.NewOverlay(w.path, w.base.Name)
	}
	if ov.Profile != w.base.Name {
		return fmt.Errorf("learned overlay %s belongs to profile %q, not %q: not written", w.path, ov.Profile, w.base.Name)
	}
	keys := make([]string, 0, len(batch))
	for k := range batch {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := *batch[k]
		slices.Sort(v.SeenIn)
		// An entry the file cannot hold (it would not parse back) is
		// dropped here rather than making the whole file unreadable. It
		// is checked as a [[refused]] entry: its form only, since Add
		// refuses what no overlay may allow.
		one := profiles.NewOverlay(w.path, w.base.Name)
		one.Refused = []profiles.LearnedVerdict{v}
		one.Refused[0].Reason = "form check"
		if v.Runs == 0 {
			one.Refused[0].Runs = 1
		}
		if _, err := profiles.ParseOverlay(w.path, one.Marshal()); err != nil {
			w.logger.Warn("learned verdict not recorded", "syscall", v.Syscall, "verdict", v.Action.String(), "err", err)
			continue
		}
		ov.Add(v)
	}
	ov.Settle(w.base)
	data := ov.Marshal()
	if _, err := profiles.ParseOverlay(w.path, data); err != nil {
		return fmt.Errorf("learned overlay: the merged file would not load, not written: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(w.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("learned overlay: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing there
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("learned overlay: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("learned overlay: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("learned overlay: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("learned overlay: %w", err)
	}
	if err := os.Rename(tmp.Name(), w.path); err != nil {
		return fmt.Errorf("learned overlay: %w", err)
	}
	scalar, pointer, pending, refused := ov.Entries()
	w.logger.Info("learned overlay written", "path", w.path, "rules", scalar+pointer, "pending", pending, "refused", refused)
	return nil
}
