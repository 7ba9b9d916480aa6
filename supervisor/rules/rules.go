package rules

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/archangel-sandbox/archangel/profiles"
)

// DenyErrno is the errno of every deny verdict of a rule set: [files] and
// [network] deny entries, [[exec.rule]] action = "deny", and a call only
// part of whose access is allowed. It is what Landlock returns, so a call
// refused by the supervisor and one refused by the kernel look the same.
const DenyErrno profiles.Errno = 13 // EACCES

// Safety says how an allow verdict can be carried out.
type Safety int

const (
	// Advisory: the verdict was taken on memory the target can still change
	// (a path, a sockaddr, an argv); letting the call CONTINUE may run it on
	// other values than the ones checked (seccomp_unotify(2), "Design
	// goals; use of SECCOMP_USER_NOTIF_FLAG_CONTINUE"). It is the zero
	// value so that a forgotten field never claims more than it should.
	Advisory Safety = iota
	// RaceFree: a deny (refusing is never wrong), or an allow the supervisor
	// carries out itself on what it checked (open family: open + ADDFD;
	// connect: the target's socket taken with pidfd_getfd), or one the
	// kernel re-checks on the path it resolves (exec under the Landlock
	// plan, when the plan is exact; see LandlockPlan).
	RaceFree
)

func (s Safety) String() string {
	switch s {
	case Advisory:
		return "advisory"
	case RaceFree:
		return "race-free"
	}
	return "unknown"
}

// Env is what the variables of path globs expand to, taken at launch.
// CWD and HOME are needed only when a rule uses them; TMPDIR defaults to
// /tmp. Values must be absolute; they are cleaned and taken literally
// (glob metacharacters in them are escaped).
type Env struct {
	CWD    string
	HOME   string
	TMPDIR string
}

// Resolver looks up the addresses of a host name; *net.Resolver (and so
// net.DefaultResolver) satisfies it. network is "ip": A and AAAA records.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Ancestor is one process above the caller of execve, for the parent
// globs of [[exec.rule]]: Ancestors[0] is the caller's parent (the parent
// of the program about to run), then its parent, and so on.
type Ancestor struct {
	Comm string // /proc/PID/comm (at most 15 bytes)
	Exe  string // /proc/PID/exe target, absolute
}

// RuleKind is the list a rule comes from.
type RuleKind int

const (
	KindFileRead   RuleKind = iota // [files] read
	KindFileWrite                  // [files] write
	KindFileExec                   // [files] exec
	KindFileDeny                   // [files] deny
	KindExecRule                   // [[exec.rule]]
	KindNetConnect                 // [network] connect
	KindNetBind                    // [network] bind
	KindNetDeny                    // [network] deny
)

var ruleKindNames = [...]string{"files.read", "files.write", "files.exec", "files.deny", "exec.rule", "network.connect", "network.bind", "network.deny"}

func (k RuleKind) String() string {
	if k >= 0 && int(k) < len(ruleKindNames) {
		return ruleKindNames[k]
	}
	return "unknown"
}

// RuleInfo describes one rule of a Set, for `profile check` and
// `profile explain`.
type RuleInfo struct {
	Index    int          // position in Explain(); Verdict.Index refers to it
	Pos      profiles.Pos // where it was written
	Kind     RuleKind     //
	Source   string       // "files.deny[2]", "exec.rule[0]", "network.connect[1]"
	Text     string       // the pattern or endpoint as written
	Expanded string       // the path glob after ${VAR} expansion and cleaning; "" for network entries
	Action   profiles.Action
	Errno    profiles.Errno // for ActionErrno
	// Safety of the rule's allow on its main call: open for files.read and
	// files.write, execve for files.exec and [[exec.rule]], connect for
	// network.connect, bind for network.bind; RaceFree for denies.
	// SafetyNote names the calls on which it is weaker.
	Safety      Safety
	SafetyNote  string
	Specificity int          // comparison key (larger wins); compare only within one Set
	Addrs       []netip.Addr // a host name's current addresses
	Note        string       // "unresolved: ...", Landlock remarks
}

// String is the rule's line in `profile explain`.
func (r RuleInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %q", r.Pos, r.Source, r.Text)
	if r.Expanded != "" && r.Expanded != r.Text {
		fmt.Fprintf(&b, " (%s)", r.Expanded)
	}
	b.WriteString(" ")
	b.WriteString(actionText(r.Action, r.Errno))
	fmt.Fprintf(&b, " %s", r.Safety)
	if r.SafetyNote != "" {
		fmt.Fprintf(&b, " (%s)", r.SafetyNote)
	}
	if len(r.Addrs) > 0 {
		b.WriteString(" addrs")
		for _, a := range r.Addrs {
			b.WriteString(" " + a.String())
		}
	}
	if r.Note != "" {
		b.WriteString("; " + r.Note)
	}
	return b.String()
}

func actionText(a profiles.Action, e profiles.Errno) string {
	if a == profiles.ActionErrno {
		return "deny " + e.String()
	}
	return a.String()
}

// Verdict is what the rules say about one call.
type Verdict struct {
	// Matched is false when no rule speaks for the call; the supervisor
	// then falls back to its [supervisor] default. The other fields are
	// then zero, except Index (-1).
	Matched bool
	Action  profiles.Action // ActionAllow, ActionLog, ActionErrno or ActionKill
	Errno   profiles.Errno  // for ActionErrno
	// Rule names the deciding rule: `file:line:col list[i] "pattern"`,
	// for a host name ` -> address` as well. Index is its RuleInfo.
	Rule  string
	Index int
	// Note says why a verdict is not simply the rule's action: part of the
	// access has no rule, or the call's path or argv was truncated.
	Note        string
	Safety      Safety
	Specificity int // the deciding rule's comparison key
}

// String is the verdict for a log line.
func (v Verdict) String() string {
	if !v.Matched {
		return "no rule"
	}
	s := actionText(v.Action, v.Errno) + " by " + v.Rule + " (" + v.Safety.String() + ")"
	if v.Note != "" {
		s += ": " + v.Note
	}
	return s
}

// pathRule is a compiled [files] entry or [[exec.rule]].
type pathRule struct {
	info   int
	glob   *pathGlob
	action profiles.Action
	errno  profiles.Errno
	key    uint64
	text   string

	// [[exec.rule]] conditions.
	cond     bool       // argv or parent given
	anyArgv  bool       // no argv patterns: any argv
	argv     []string   // positional globs, without a trailing "**"
	argvTail bool       // the patterns ended in "**": any remaining arguments
	parents  []ancestor // nearest first
}

// ancestor is a compiled parent glob: exe (it contains '/') or comm.
type ancestor struct {
	comm string
	exe  *pathGlob
}

func (r *pathRule) denies() bool {
	return r.action == profiles.ActionErrno || r.action == profiles.ActionKill
}

// Set is a compiled, immutable rule set. Decide is safe for concurrent
// use; Refresh returns a new Set rather than changing this one.
type Set struct {
	version uint64
	infos   []RuleInfo

	// Candidates per access, most specific first: allow rules of that
	// access and every deny rule. exec also holds the [[exec.rule]]s.
	read, write, exec []*pathRule

	connect, bind netLists
	nets          []*netSource
	hosts         map[string]*hostState
	res           Resolver
	now           func() time.Time
	next          time.Time // earliest host refresh; zero without host names

	depth     int  // longest parent chain any rule asks for
	execExact bool // exec allows are enforced exactly by the Landlock plan
	plan      Plan
	planOK    bool
	warnings  []string
}

// Version identifies the rule content: 1 after Compile, bumped by Refresh
// whenever a host name's addresses change. Cache verdicts under it.
func (s *Set) Version() uint64 { return s.version }

// AncestorDepth is how many ancestors Decide needs for an execve: the
// longest parent chain of any [[exec.rule]] (0: pass nil).
func (s *Set) AncestorDepth() int { return s.depth }

// Warnings lists what Compile and Refresh noticed but accepted: host names
// that did not resolve (such entries match nothing), parent globs longer
// than a comm can be.
func (s *Set) Warnings() []string { return slices.Clone(s.warnings) }

// Explain lists every rule with its position, kind, action and safety
// class: [files] read, write, exec, deny, then [[exec.rule]], then
// [network] connect, bind, deny, each in written order.
func (s *Set) Explain() []RuleInfo {
	out := slices.Clone(s.infos)
	for i := range out {
		out[i].Addrs = slices.Clone(out[i].Addrs)
	}
	return out
}

// Compile expands and compiles the [files], [exec] and [network] rules of
// p. Host names are resolved through res (nil: none resolve); see the
// package documentation for what happens when they do not. Every problem
// is returned at once.
func Compile(ctx context.Context, p *profiles.Profile, env Env, res Resolver) (*Set, error) {
	return compile(ctx, p, env, res, time.Now)
}

// compile is Compile with a clock (tests).
func compile(ctx context.Context, p *profiles.Profile, env Env, res Resolver, now func() time.Time) (*Set, error) {
	s := &Set{version: 1, res: res, now: now, hosts: map[string]*hostState{}}
	var errs []error
	if env.TMPDIR == "" {
		env.TMPDIR = "/tmp"
	}

	files := []struct {
		kind RuleKind
		pats []profiles.Pattern
	}{
		{KindFileRead, p.Files.Read},
		{KindFileWrite, p.Files.Write},
		{KindFileExec, p.Files.Exec},
		{KindFileDeny, p.Files.Deny},
	}
	for _, l := range files {
		for i, pat := range l.pats {
			src := fmt.Sprintf("%s[%d]", l.kind, i)
			g, err := compilePattern(pat.Text, env)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %s %q: %w", pat.Pos, src, pat.Text, err))
				continue
			}
			r := &pathRule{info: len(s.infos), glob: g, action: profiles.ActionAllow, key: g.spec.key()}
			if l.kind == KindFileDeny {
				r.action, r.errno = profiles.ActionErrno, DenyErrno
			}
			r.text = fmt.Sprintf("%s %s %q", pat.Pos, src, pat.Text)
			s.infos = append(s.infos, RuleInfo{
				Index: r.info, Pos: pat.Pos, Kind: l.kind, Source: src, Text: pat.Text, Expanded: g.text,
				Action: r.action, Errno: r.errno, Specificity: int(r.key),
			})
			switch l.kind {
			case KindFileRead:
				s.read = append(s.read, r)
			case KindFileWrite:
				s.write = append(s.write, r)
			case KindFileExec:
				s.exec = append(s.exec, r)
			case KindFileDeny:
				s.read = append(s.read, r)
				s.write = append(s.write, r)
				s.exec = append(s.exec, r)
			}
		}
	}

	for i, er := range p.Exec.Rules {
		src := fmt.Sprintf("exec.rule[%d]", i)
		r, err := compileExecRule(er, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s %q: %w", er.Path.Pos, src, er.Path.Text, err))
			continue
		}
		for _, pr := range r.parents {
			if pr.exe == nil && len(pr.comm) > 15 && !strings.ContainsAny(pr.comm, `*?[\`) {
				s.warnings = append(s.warnings, fmt.Sprintf("%s: %s parent %q is longer than a comm (15 bytes) and never matches; write %q or the executable's path", er.Pos, src, pr.comm, pr.comm[:15]+"*"))
			}
		}
		s.depth = max(s.depth, len(r.parents))
		r.info = len(s.infos)
		r.text = execRuleText(er, src)
		s.infos = append(s.infos, RuleInfo{
			Index: r.info, Pos: er.Pos, Kind: KindExecRule, Source: src, Text: er.Path.Text, Expanded: r.glob.text,
			Action: r.action, Errno: r.errno, Specificity: int(r.key),
		})
		s.exec = append(s.exec, r)
	}
	for _, l := range [][]*pathRule{s.read, s.write, s.exec} {
		sortRules(l)
	}

	errs = append(errs, s.compileNetwork(ctx, p)...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.plan, s.planOK, s.execExact = landlockPlan(p, s)
	s.classify()
	return s, nil
}

// compilePattern expands a leading ${VAR} and compiles the glob.
func compilePattern(text string, env Env) (*pathGlob, error) {
	expanded, err := expand(text, env)
	if err != nil {
		return nil, err
	}
	g, err := compilePathGlob(expanded)
	if err != nil {
		return nil, fmt.Errorf("bad path glob: %w", err)
	}
	return g, nil
}

// expand replaces a leading ${CWD}, ${HOME} or ${TMPDIR}.
func expand(text string, env Env) (string, error) {
	if !strings.HasPrefix(text, "${") {
		return text, nil
	}
	end := strings.IndexByte(text, '}')
	if end < 0 {
		return "", errors.New("unterminated ${")
	}
	name := text[2:end]
	var v string
	switch name {
	case "CWD":
		v = env.CWD
	case "HOME":
		v = env.HOME
	case "TMPDIR":
		v = env.TMPDIR
	default:
		return "", fmt.Errorf("unknown variable ${%s} (want ${CWD}, ${HOME} or ${TMPDIR})", name)
	}
	if v == "" {
		return "", fmt.Errorf("${%s} is not set; the launcher must provide it (rules.Env.%s)", name, name)
	}
	if !path.IsAbs(v) {
		return "", fmt.Errorf("${%s} = %q is not an absolute path", name, v)
	}
	return escapeGlob(path.Clean(v)) + text[end+1:], nil
}

func compileExecRule(er profiles.ExecRule, env Env) (*pathRule, error) {
	g, err := compilePattern(er.Path.Text, env)
	if err != nil {
		return nil, err
	}
	r := &pathRule{glob: g, action: er.Action}
	switch er.Action {
	case profiles.ActionAllow, profiles.ActionLog, profiles.ActionKill:
	case profiles.ActionErrno:
		r.errno = DenyErrno
	default:
		return nil, fmt.Errorf("action %s is not allowed in an exec rule (want allow, deny, kill or log)", er.Action)
	}
	argv := er.Argv
	if n := len(argv); n > 0 && argv[n-1] == "**" {
		argv, r.argvTail = argv[:n-1], true
	}
	for _, a := range argv {
		if _, _, err := checkGlob(a); err != nil {
			return nil, fmt.Errorf("bad argv glob %q: %w", a, err)
		}
	}
	r.argv = argv
	r.anyArgv = len(argv) == 0 // argv = [] or ["**"]
	for _, pg := range er.Parent {
		if strings.Contains(pg, "/") {
			e, err := compilePattern(pg, env)
			if err != nil {
				return nil, fmt.Errorf("parent %q (a glob with / is matched against the ancestor's executable path, so it must be absolute): %w", pg, err)
			}
			r.parents = append(r.parents, ancestor{exe: e})
			continue
		}
		if _, _, err := checkGlob(pg); err != nil {
			return nil, fmt.Errorf("bad parent glob %q: %w", pg, err)
		}
		r.parents = append(r.parents, ancestor{comm: pg})
	}
	r.cond = !r.anyArgv || len(r.parents) > 0
	// Argv rank: two per positional pattern, plus one when the length is
	// fixed (no trailing "**"): ["git"] < ["git", "clone", "**"] < ["git", "clone"].
	var nargv int
	if !r.anyArgv {
		nargv = 2 * len(r.argv)
		if !r.argvTail {
			nargv++
		}
	}
	r.key = g.spec.key() | 1<<19 | clamp(nargv, 1<<9-1)<<10 | clamp(len(r.parents), 1<<10-1)
	return r, nil
}

func execRuleText(er profiles.ExecRule, src string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %q", er.Path.Pos, src, er.Path.Text)
	if len(er.Argv) > 0 {
		fmt.Fprintf(&b, " argv %q", er.Argv)
	}
	if len(er.Parent) > 0 {
		fmt.Fprintf(&b, " parent %q", er.Parent)
	}
	return b.String()
}

func strictness(a profiles.Action) int {
	switch a {
	case profiles.ActionKill:
		return 3
	case profiles.ActionErrno:
		return 2
	case profiles.ActionLog:
		return 1
	}
	return 0
}

// sortRules orders candidates so that the first match decides: the most
// specific first; at equal specificity kill, then deny, then log, then
// allow; then written order.
func sortRules(l []*pathRule) {
	slices.SortStableFunc(l, func(a, b *pathRule) int {
		switch {
		case a.key != b.key:
			if a.key > b.key {
				return -1
			}
			return 1
		case strictness(a.action) != strictness(b.action):
			return strictness(b.action) - strictness(a.action)
		}
		return a.info - b.info
	})
}

// classify fills the safety columns of Explain.
func (s *Set) classify() {
	execSafety := Advisory
	execNote := "the Landlock plan does not enforce exec exactly; the path can change after the check"
	if s.execExact {
		execSafety, execNote = RaceFree, "enforced by the Landlock plan"
	}
	for i := range s.infos {
		r := &s.infos[i]
		if r.Action == profiles.ActionErrno || r.Action == profiles.ActionKill {
			r.Safety = RaceFree
			continue
		}
		switch r.Kind {
		case KindFileRead:
			r.Safety, r.SafetyNote = RaceFree, "open is emulated; advisory for stat, readlink, chdir"
		case KindFileWrite:
			r.Safety, r.SafetyNote = RaceFree, "open is emulated; advisory for create, delete, rename, link, attribute changes"
		case KindFileExec:
			r.Safety, r.SafetyNote = execSafety, execNote
		case KindExecRule:
			r.Safety, r.SafetyNote = execSafety, execNote
			if er := s.ruleAt(i); er != nil && er.cond {
				r.Safety, r.SafetyNote = Advisory, "argv and parent chain are checked once; argv can change after the check"
			}
		case KindNetConnect:
			r.Safety, r.SafetyNote = RaceFree, "connect is carried out on the target's socket; advisory for sendto, sendmsg"
		case KindNetBind:
			r.Safety, r.SafetyNote = Advisory, "the sockaddr can change after the check"
		}
	}
}

func (s *Set) ruleAt(info int) *pathRule {
	for _, r := range s.exec {
		if r.info == info {
			return r
		}
	}
	return nil
}
