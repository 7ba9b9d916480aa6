package patterns

import (
	"slices"
	"strconv"
	"strings"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor/rules"
)

// capVal is a captured value: an fd or other int argument, or a path.
type capVal struct {
	set bool
	n   uint32
	s   string
}

// state is a partial match: pattern p has matched steps [0, step) (or, for
// a counting step, is counting events of step).
type state struct {
	p       *pattern
	step    int // next step to match
	owner   int // PID of the process that matched the first step
	lastPID int // PID of the process that matched the latest step
	start   int64
	last    int64
	caps    []capVal
	times   []int64 // ring of the last count events of a counting step
	n, head int
	steps   []string
	gen     uint64 // event that created it: it does not advance on that event

	prev, next *state // global order, oldest first
}

// sandboxOwner owns the partial matches of ScopeSandbox patterns (no
// process has PID 0; Forget never drops them: the file curl wrote outlives
// curl).
const sandboxOwner = 0

type proc struct {
	states []*state // oldest first
}

// Observe feeds one event and returns the patterns whose last step it
// completes, in file order (nil if none). See the package documentation
// for what the supervisor must put into ev.
func (e *Engine) Observe(ev Event) []Match {
	c := ev.Call
	if c == nil {
		return nil
	}
	byName := e.byName[c.Name]
	var byKind []cand
	if c.Kind >= 0 && int(c.Kind) < len(e.byKind) {
		byKind = e.byKind[c.Kind]
	}
	if len(byName) == 0 && len(byKind) == 0 && len(e.anyCall) == 0 {
		return nil
	}
	now := ev.Time.UnixNano()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	var out []Match
	var pend []*state
	for _, list := range [...][]cand{byName, byKind, e.anyCall} {
		for _, cd := range list {
			st := cd.p.steps[cd.s]
			if !st.static(&ev) {
				continue
			}
			if cd.s == 0 {
				out, pend = e.begin(cd.p, &ev, now, out, pend)
			} else {
				out, pend = e.advance(cd.p, cd.s, &ev, now, out, pend)
			}
		}
	}
	for _, x := range pend {
		e.insert(x)
	}
	if len(out) > 1 {
		slices.SortStableFunc(out, func(a, b Match) int { return e.order(a.Pattern) - e.order(b.Pattern) })
	}
	return out
}

func (e *Engine) order(name string) int {
	for i, p := range e.patterns {
		if p.name == name {
			return i
		}
	}
	return len(e.patterns)
}

// Forget drops the partial matches a process owns (those whose first step
// it made). The supervisor calls it when the process has exited.
func (e *Engine) Forget(pid int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	pr := e.procs[pid]
	if pr == nil {
		return
	}
	for _, x := range pr.states {
		e.unlink(x)
	}
	delete(e.procs, pid)
}

// begin handles an event that matches a pattern's first step.
func (e *Engine) begin(p *pattern, ev *Event, now int64, out []Match, pend []*state) ([]Match, []*state) {
	st := p.steps[0]
	pid := ev.Call.Process.PID
	if p.scope == ScopeSandbox {
		pid = sandboxOwner
	}
	if st.count <= 1 {
		if len(p.steps) == 1 {
			return append(out, e.match(p, nil, st, ev, "")), pend
		}
		x := e.newState(p, 1, pid, now, nil)
		x.capture(st, ev)
		x.steps = append(x.steps, describe(st, ev, ""))
		return out, append(pend, x)
	}
	// A counting first step: one counter per process (and captured value).
	var cv capVal
	if st.capture >= 0 {
		cv = captureOf(st, ev)
	}
	var x *state
	if pr := e.procs[pid]; pr != nil {
		for _, y := range pr.states {
			if y.p == p && y.step == 0 && (st.capture < 0 || y.caps[st.capture] == cv) {
				x = y
				break
			}
		}
	}
	if x == nil {
		x = e.newState(p, 0, pid, now, nil)
		x.capture(st, ev)
		e.insert(x)
	}
	x.last = now
	oldest, done := x.push(now, p.window)
	if !done {
		return out, pend
	}
	note := countNote(st, now-oldest)
	if len(p.steps) == 1 {
		return append(out, e.match(p, x, st, ev, note)), pend
	}
	y := e.newState(p, 1, pid, oldest, x)
	y.steps = append(y.steps, describe(st, ev, note))
	return out, append(pend, y)
}

// advance handles an event that matches step s > 0 of p by its own
// conditions: it moves the partial matches waiting for s that the event
// may continue (same process, or a descendant for ScopeTree; within the
// window; captures equal).
func (e *Engine) advance(p *pattern, s int, ev *Event, now int64, out []Match, pend []*state) ([]Match, []*state) {
	st := p.steps[s]
	pid := ev.Call.Process.PID
	owners := 1
	if p.scope == ScopeTree {
		owners += min(len(ev.Tree), MaxTreeDepth)
	}
	for o := range owners {
		owner := pid
		switch {
		case p.scope == ScopeSandbox:
			owner = sandboxOwner
		case o > 0:
			owner = ev.Tree[o-1]
		}
		pr := e.procs[owner]
		if pr == nil {
			continue
		}
		for i := 0; i < len(pr.states); i++ {
			x := pr.states[i]
			if x.p != p || x.step != s || x.gen == e.gen {
				continue
			}
			if now-x.start > p.window {
				e.remove(x)
				i--
				continue
			}
			if st.sameProc && x.lastPID != pid {
				continue
			}
			if !st.refsMatch(x.caps, ev) {
				continue
			}
			note := ""
			if st.count > 1 {
				x.last = now
				if _, done := x.push(now, p.window); !done {
					continue
				}
				note = countNote(st, 0)
			}
			if s == len(p.steps)-1 {
				out = append(out, e.match(p, x, st, ev, note))
				if st.count <= 1 {
					e.remove(x)
					i--
				}
				continue
			}
			y := e.newState(p, s+1, x.owner, x.start, x)
			y.lastPID = pid
			y.capture(st, ev)
			y.steps = append(y.steps, describe(st, ev, note))
			pend = append(pend, y)
		}
	}
	return out, pend
}

func countNote(st *step, span int64) string {
	s := "×" + strconv.Itoa(st.count)
	if span > 0 {
		s += " in " + strconv.FormatFloat(float64(span)/1e9, 'f', 3, 64) + "s"
	}
	return s
}

func (e *Engine) match(p *pattern, x *state, st *step, ev *Event, note string) Match {
	m := Match{Pattern: p.name, Risk: p.risk, Verdict: p.verdict}
	if x != nil && x.step > 0 {
		m.Steps = append(m.Steps, x.steps...)
	}
	m.Steps = append(m.Steps, describe(st, ev, note))
	return m
}

// newState makes a state at step; from (may be nil) gives the captures and
// steps matched so far.
func (e *Engine) newState(p *pattern, step, owner int, start int64, from *state) *state {
	x := &state{p: p, step: step, owner: owner, lastPID: owner, start: start, last: start, gen: e.gen}
	if len(p.caps) > 0 {
		x.caps = make([]capVal, len(p.caps))
	}
	if from != nil {
		copy(x.caps, from.caps)
		x.lastPID = from.lastPID
		if from.step > 0 {
			x.steps = append(make([]string, 0, step+1), from.steps...)
		}
	}
	if step < len(p.steps) && p.steps[step].count > 1 {
		x.times = make([]int64, p.steps[step].count)
	}
	return x
}

func (x *state) capture(st *step, ev *Event) {
	if st.capture >= 0 {
		x.caps[st.capture] = captureOf(st, ev)
	}
}

func captureOf(st *step, ev *Event) capVal {
	switch st.from {
	case fromRet:
		return capVal{set: true, n: uint32(ev.Ret)}
	case fromPath:
		return capVal{set: true, s: ev.Call.Path}
	}
	return capVal{set: true, n: uint32(ev.Call.Args[st.from])}
}

// push records an event of a counting step; done reports that the last
// count events fit in window, oldest is the first of them.
func (x *state) push(now, window int64) (oldest int64, done bool) {
	x.times[x.head] = now
	x.head = (x.head + 1) % len(x.times)
	if x.n < len(x.times) {
		x.n++
	}
	if x.n < len(x.times) {
		return 0, false
	}
	oldest = x.times[x.head]
	return oldest, now-oldest <= window
}

// ---- state bookkeeping ----

func (e *Engine) insert(x *state) {
	pr := e.procs[x.owner]
	if pr == nil {
		pr = &proc{}
		e.procs[x.owner] = pr
	}
	same := 0
	for i := 0; i < len(pr.states); i++ {
		y := pr.states[i]
		if y.p != x.p {
			continue
		}
		if y.step == x.step && y.step > 0 && slices.Equal(y.caps, x.caps) && y.lastPID == x.lastPID {
			// Equal but for the times: the later start leaves more window.
			if y.start >= x.start {
				return
			}
			e.remove(y)
			i--
			continue
		}
		same++
	}
	if same >= e.lim.PerPattern {
		for _, y := range pr.states {
			if y.p == x.p {
				e.remove(y)
				break
			}
		}
	}
	if len(pr.states) >= e.lim.PerProcess {
		e.remove(pr.states[0])
	}
	for e.total >= e.lim.Total {
		e.remove(e.head)
	}
	if e.procs[x.owner] == nil { // removals emptied it
		e.procs[x.owner] = pr
	}
	pr.states = append(pr.states, x)
	x.prev = e.tail
	if e.tail != nil {
		e.tail.next = x
	} else {
		e.head = x
	}
	e.tail = x
	e.total++
}

// remove drops one state.
func (e *Engine) remove(x *state) {
	pr := e.procs[x.owner]
	if pr != nil {
		if i := slices.Index(pr.states, x); i >= 0 {
			pr.states = slices.Delete(pr.states, i, i+1)
		}
		if len(pr.states) == 0 {
			delete(e.procs, x.owner)
		}
	}
	e.unlink(x)
}

func (e *Engine) unlink(x *state) {
	if x.prev != nil {
		x.prev.next = x.next
	} else if e.head == x {
		e.head = x.next
	}
	if x.next != nil {
		x.next.prev = x.prev
	} else if e.tail == x {
		e.tail = x.prev
	}
	x.prev, x.next = nil, nil
	e.total--
}

// ---- matching one event against one step ----

// static checks the conditions that need no partial match. It does not
// allocate.
func (s *step) static(ev *Event) bool {
	c := ev.Call
	if s.kinds != 0 && (c.Kind < 0 || c.Kind >= 32 || s.kinds&(1<<uint(c.Kind)) == 0) {
		return false
	}
	if s.denied >= 0 && ev.Denied != (s.denied == 1) {
		return false
	}
	if s.access != 0 {
		acc := c.Access
		if acc == 0 {
			acc = defaultAccess(c.Kind)
		}
		if acc&s.access != s.access {
			return false
		}
	}
	if s.flags != 0 && c.Flags&s.flags != s.flags {
		return false
	}
	if len(s.paths) > 0 && !anyGlob(s.paths, c.Path) {
		return false
	}
	if s.pathPID != 0 && !s.pidMatch(c) {
		return false
	}
	if len(s.exe) > 0 && !anyGlob(s.exe, c.Process.Exe) {
		return false
	}
	if len(s.notExe) > 0 && anyGlob(s.notExe, c.Process.Exe) {
		return false
	}
	if s.hasArgv && !argvMatch(s.argv, c.Argv) {
		return false
	}
	if s.addr != nil && !s.addr.match(ev) {
		return false
	}
	for i := range s.args {
		if a := &s.args[i]; a.ref < 0 && !a.match(uint32(c.Args[a.index]), 0) {
			return false
		}
	}
	if s.capture >= 0 {
		switch {
		case s.from == fromRet && !ev.RetKnown:
			return false
		case s.from == fromPath && c.Path == "":
			return false
		}
	}
	return true
}

// refsMatch checks the conditions on captures.
func (s *step) refsMatch(caps []capVal, ev *Event) bool {
	if s.pathRef >= 0 && (!caps[s.pathRef].set || caps[s.pathRef].s != ev.Call.Path) {
		return false
	}
	for i := range s.args {
		a := &s.args[i]
		if a.ref >= 0 && (!caps[a.ref].set || !a.match(uint32(ev.Call.Args[a.index]), caps[a.ref].n)) {
			return false
		}
	}
	return true
}

// match compares v (an argument's low 32 bits) with the condition; ref is
// the captured value when a.ref >= 0. Order comparisons are signed (fds
// and AT_FDCWD are C ints).
func (a *argCond) match(v, ref uint32) bool {
	if a.ref >= 0 {
		if a.op == profiles.OpNe {
			return v != ref
		}
		return v == ref
	}
	switch a.op {
	case profiles.OpEq:
		return slices.Contains(a.values, v)
	case profiles.OpNe:
		return !slices.Contains(a.values, v)
	case profiles.OpMaskedEq:
		return slices.Contains(a.values, v&a.mask)
	case profiles.OpLt:
		return int32(v) < int32(a.values[0])
	case profiles.OpLe:
		return int32(v) <= int32(a.values[0])
	case profiles.OpGt:
		return int32(v) > int32(a.values[0])
	case profiles.OpGe:
		return int32(v) >= int32(a.values[0])
	}
	return false
}

func (s *step) pidMatch(c *analyzer.Call) bool {
	el := procPID(c.Path)
	if el == "" {
		return false
	}
	own := el == "self" || el == "thread-self"
	if !own {
		n, ok := atoi(el)
		if !ok {
			return false // /proc/sys/..., /proc/net/...: not a process
		}
		own = n == c.Process.PID || (c.Process.TID != 0 && n == c.Process.TID)
	}
	return own == (s.pathPID == pidSelf)
}

func atoi(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func defaultAccess(k analyzer.Kind) analyzer.Access {
	switch k {
	case analyzer.KindOpen, analyzer.KindStat, analyzer.KindChdir:
		return analyzer.AccessRead
	case analyzer.KindExec:
		return analyzer.AccessExec
	case analyzer.KindCreate, analyzer.KindDelete, analyzer.KindAttr, analyzer.KindRename:
		return analyzer.AccessWrite
	}
	return 0
}

func anyGlob(gs []*rules.Glob, p string) bool {
	for _, g := range gs {
		if g.Match(p) {
			return true
		}
	}
	return false
}

// argvMatch matches argv positionally; a last pattern "**" matches any
// number of remaining arguments.
func argvMatch(pats, argv []string) bool {
	for i, pat := range pats {
		if i == len(pats)-1 && pat == "**" {
			return true
		}
		if i >= len(argv) || !rules.WordMatch(pat, argv[i]) {
			return false
		}
	}
	return len(argv) == len(pats)
}

func (a *addrSpec) match(ev *Event) bool {
	sa := ev.Call.Addr
	if sa == nil {
		return false
	}
	if a.any || a.notAllowed && ev.Verdict != profiles.ActionAllow {
		return true
	}
	switch sa.Family {
	case 1: // AF_UNIX
		return a.unix
	case 2, 10: // AF_INET, AF_INET6
		if !sa.Addr.IsValid() {
			return false
		}
		if a.ip {
			return true
		}
		ip := sa.Addr.Addr().Unmap().WithZone("")
		for _, p := range a.prefixes {
			if p.Contains(ip) {
				return true
			}
		}
	}
	return false
}

// describe is one line of Match.Steps.
func describe(st *step, ev *Event, note string) string {
	c := ev.Call
	var b strings.Builder
	b.WriteString(st.label)
	b.WriteString(": pid ")
	b.WriteString(strconv.Itoa(c.Process.PID))
	b.WriteByte(' ')
	b.WriteString(c.Name)
	switch {
	case c.Addr != nil && c.Addr.Family == 1:
		b.WriteString(" unix:" + c.Addr.Unix)
	case c.Addr != nil && c.Addr.Addr.IsValid():
		b.WriteString(" " + c.Addr.Addr.String())
	case c.Path != "":
		b.WriteString(" " + strconv.Quote(c.Path))
	default:
		b.WriteString("(")
		for i := range 3 {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Itoa(int(int32(c.Args[i]))))
		}
		b.WriteString(")")
	}
	if ev.RetKnown {
		b.WriteString(" = " + strconv.FormatInt(ev.Ret, 10))
	}
	if ev.Denied {
		b.WriteString(" [denied]")
	}
	if note != "" {
		b.WriteString(" " + note)
	}
	return b.String()
}
