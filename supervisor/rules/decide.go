package rules

import (
	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
)

// Notes of verdicts that are not simply their rule's action.
const noteTruncated = "path or argv was truncated: an allow needs the whole value; denied"

// missingNotes[second][bits] says which access of the first or second
// path no rule allows.
var missingNotes = func() (t [2][8]string) {
	names := [...]string{"files.read", "files.write", "files.exec"}
	for second := range 2 {
		for bits := 1; bits < 8; bits++ {
			s := "no "
			n := 0
			for i, name := range names {
				if bits&(1<<i) != 0 {
					if n > 0 {
						s += " or "
					}
					s += name
					n++
				}
			}
			s += " rule matches "
			if second == 1 {
				s += "the second path"
			} else {
				s += "the path"
			}
			t[second][bits] = s + "; denied"
		}
	}
	return t
}()

var noMatch = Verdict{Index: -1}

// Decide returns what the rules say about c. ancestors is the caller's
// parent chain, nearest first, needed only for an execve and only
// AncestorDepth() long; pass nil otherwise. Decide does not allocate
// (except to clean a path that is not in the clean form Call.Path
// promises) and is safe for concurrent use.
func (s *Set) Decide(c *analyzer.Call, ancestors []Ancestor) Verdict {
	var v Verdict
	switch c.Kind {
	case analyzer.KindConnect:
		v = s.decideNet(c, &s.connect)
	case analyzer.KindBind:
		v = s.decideNet(c, &s.bind)
	case analyzer.KindExec:
		v = s.decideExec(c, ancestors)
	case analyzer.KindOpen, analyzer.KindStat, analyzer.KindChdir, analyzer.KindCreate,
		analyzer.KindDelete, analyzer.KindAttr, analyzer.KindRename:
		v = s.decidePath(c, ancestors)
	default:
		return noMatch
	}
	if v.Matched && c.Truncated && (v.Action == profiles.ActionAllow || v.Action == profiles.ActionLog) {
		v.Action, v.Errno, v.Note, v.Safety = profiles.ActionErrno, DenyErrno, noteTruncated, RaceFree
	}
	return v
}

// defaultAccess is the access of a path call whose Access is zero.
func defaultAccess(k analyzer.Kind) analyzer.Access {
	switch k {
	case analyzer.KindCreate, analyzer.KindDelete, analyzer.KindAttr, analyzer.KindRename:
		return analyzer.AccessWrite
	case analyzer.KindExec:
		return analyzer.AccessExec
	}
	return analyzer.AccessRead
}

// outcome gathers the per-access winners of a path call.
type outcome struct {
	deny    *pathRule // the most specific denying winner
	weakest *pathRule // the least specific allowing winner
	log     bool      // some allowing winner logs
	missing [2]uint8  // access bits no rule speaks for, per path
	matched bool
}

func (o *outcome) add(r *pathRule, bit analyzer.Access, second int) {
	if r == nil {
		o.missing[second] |= uint8(bit)
		return
	}
	o.matched = true
	if r.denies() {
		if o.deny == nil || r.key > o.deny.key {
			o.deny = r
		}
		return
	}
	if o.weakest == nil || r.key < o.weakest.key {
		o.weakest = r
	}
	o.log = o.log || r.action == profiles.ActionLog
}

func (s *Set) decidePath(c *analyzer.Call, anc []Ancestor) Verdict {
	acc := c.Access
	if acc == 0 {
		acc = defaultAccess(c.Kind)
	}
	var o outcome
	s.check(&o, c, anc, c.Path, acc, 0)
	if c.Kind == analyzer.KindRename {
		// Both names need write: the source because the call removes or
		// re-exposes it (a hard link of a denied file), the destination
		// because it is created or replaced.
		s.check(&o, c, anc, c.Path2, analyzer.AccessWrite, 1)
	}
	switch {
	case o.deny != nil:
		return denyVerdict(o.deny)
	case !o.matched:
		return noMatch
	case o.missing[0] != 0 || o.missing[1] != 0:
		second := 0
		if o.missing[0] == 0 {
			second = 1
		}
		w := o.weakest
		return Verdict{Matched: true, Action: profiles.ActionErrno, Errno: DenyErrno, Rule: w.text, Index: w.info,
			Note: missingNotes[second][o.missing[second]&7], Safety: RaceFree, Specificity: int(w.key)}
	}
	w := o.weakest
	v := Verdict{Matched: true, Action: profiles.ActionAllow, Rule: w.text, Index: w.info, Specificity: int(w.key)}
	if o.log {
		v.Action = profiles.ActionLog
	}
	if c.Kind == analyzer.KindOpen {
		v.Safety = RaceFree // the supervisor opens it and hands the fd over (ADDFD)
	}
	return v
}

// check finds the winner of each access bit of p.
func (s *Set) check(o *outcome, c *analyzer.Call, anc []Ancestor, p string, acc analyzer.Access, second int) {
	p = cleanPath(p)
	if acc&analyzer.AccessRead != 0 {
		o.add(first(s.read, p, c, anc), analyzer.AccessRead, second)
	}
	if acc&analyzer.AccessWrite != 0 {
		o.add(first(s.write, p, c, anc), analyzer.AccessWrite, second)
	}
	if acc&analyzer.AccessExec != 0 {
		o.add(first(s.exec, p, c, anc), analyzer.AccessExec, second)
	}
}

// first returns the first (most specific) rule of l that matches.
func first(l []*pathRule, p string, c *analyzer.Call, anc []Ancestor) *pathRule {
	for _, r := range l {
		if r.glob.match(p) && (!r.cond || r.condMatch(c.Argv, anc)) {
			return r
		}
	}
	return nil
}

func (r *pathRule) condMatch(argv []string, anc []Ancestor) bool {
	if !r.anyArgv {
		if len(argv) < len(r.argv) || !r.argvTail && len(argv) != len(r.argv) {
			return false
		}
		for i, pat := range r.argv {
			if !globMatch(pat, argv[i]) {
				return false
			}
		}
	}
	if len(anc) < len(r.parents) {
		return false
	}
	for i, pg := range r.parents {
		if pg.exe != nil {
			if !pg.exe.match(cleanPath(anc[i].Exe)) {
				return false
			}
		} else if !globMatch(pg.comm, anc[i].Comm) {
			return false
		}
	}
	return true
}

func denyVerdict(r *pathRule) Verdict {
	return Verdict{Matched: true, Action: r.action, Errno: r.errno, Rule: r.text, Index: r.info, Safety: RaceFree, Specificity: int(r.key)}
}

// decideExec: for an execve only the exec bit is checked (an exec grant
// includes the kernel's read of the file); [[exec.rule]]s, [files] exec
// and [files] deny compete in one list.
func (s *Set) decideExec(c *analyzer.Call, anc []Ancestor) Verdict {
	r := first(s.exec, cleanPath(c.Path), c, anc)
	switch {
	case r == nil:
		return noMatch
	case r.denies():
		return denyVerdict(r)
	}
	v := Verdict{Matched: true, Action: r.action, Rule: r.text, Index: r.info, Specificity: int(r.key)}
	if s.execExact {
		v.Safety = RaceFree
	}
	return v
}

func (s *Set) decideNet(c *analyzer.Call, l *netLists) Verdict {
	a := c.Addr
	if a == nil {
		return noMatch
	}
	var r *netRule
	switch a.Family {
	case afInet, afInet6:
		ip := a.Addr.Addr().Unmap().WithZone("")
		port := a.Addr.Port()
		for _, x := range l.ip {
			if (x.star || (x.any || x.pfx.Contains(ip)) && x.lo <= port && port <= x.hi) && ip.IsValid() {
				r = x
				break
			}
		}
	case afUnix:
		switch {
		case a.Unnamed:
			r = firstStar(l.other)
		case a.Abstract:
			for _, x := range l.abstract {
				if x.star || x.abs == a.Unix {
					r = x
					break
				}
			}
		default:
			p := cleanPath(a.Unix)
			for _, x := range l.unix {
				if x.star || x.unix.match(p) {
					r = x
					break
				}
			}
		}
	default:
		r = firstStar(l.other)
	}
	if r == nil {
		return noMatch
	}
	v := Verdict{Matched: true, Action: profiles.ActionAllow, Rule: r.text, Index: r.info, Specificity: int(r.key)}
	switch {
	case r.deny:
		v.Action, v.Errno, v.Safety = profiles.ActionErrno, DenyErrno, RaceFree
	case c.Kind == analyzer.KindConnect && c.Name == "connect":
		v.Safety = RaceFree // carried out on the target's socket (pidfd_getfd)
	}
	return v
}

func firstStar(l []*netRule) *netRule {
	if len(l) > 0 {
		return l[0] // only "*" entries are in other
	}
	return nil
}
