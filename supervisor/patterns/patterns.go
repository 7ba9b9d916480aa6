package patterns

import (
	_ "embed"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor/rules"
)

//go:embed builtin.toml
var builtinTOML []byte

// BuiltinFile is the name positions in the built-in pattern file carry.
const BuiltinFile = "builtin:patterns"

// BuiltinSource returns the shipped pattern file (the same schema a
// profile may use).
func BuiltinSource() []byte { return append([]byte(nil), builtinTOML...) }

// Env holds the values of the variables a path glob may start with.
type Env struct {
	HOME string // ${HOME}; absolute
}

// Scope says whose events one partial match may combine.
type Scope int

const (
	ScopeProcess Scope = iota // the events of one process (thread group)
	ScopeTree                 // the events of a process and its descendants
	ScopeSandbox              // the events of every process in the run
)

func (s Scope) String() string {
	switch s {
	case ScopeProcess:
		return "process"
	case ScopeTree:
		return "tree"
	case ScopeSandbox:
		return "sandbox"
	}
	return "Scope(" + strconv.Itoa(int(s)) + ")"
}

// UnmarshalText accepts process and tree.
func (s *Scope) UnmarshalText(b []byte) error {
	switch string(b) {
	case "process":
		*s = ScopeProcess
	case "tree":
		*s = ScopeTree
	case "sandbox":
		*s = ScopeSandbox
	default:
		return &valueError{"unknown scope " + strconv.Quote(string(b)) + " (want process, tree or sandbox)"}
	}
	return nil
}

type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

// Event is one notified call as the supervisor saw and decided it.
type Event struct {
	Call *analyzer.Call
	Time time.Time // when the notification arrived (monotonic or not: only differences are used)

	// Ret is the call's result when RetKnown: the supervisor knows it for
	// calls it performs itself (an emulated open: the fd installed with
	// SECCOMP_IOCTL_NOTIF_ADDFD; memfd_create, socket, dup if emulated).
	// A step that captures "ret" does not match an event without it.
	Ret      int64
	RetKnown bool

	// Verdict is what the rule layer decided: ActionAllow only when an
	// explicit allow rule matched; ActionUnset when no rule matched and the
	// [supervisor] default applies; ActionLog, ActionErrno, ActionKill as
	// decided. addr = "not_allowed" means Verdict != ActionAllow.
	Verdict profiles.Action
	// Denied reports the call is refused (by a rule, the default, or in
	// audit mode: would have been in enforce mode).
	Denied bool

	// Tree lists the PIDs (thread group IDs) of the caller's ancestors
	// inside the sandbox, nearest first: Tree[0] is Call.Process.PPID
	// unless the parent is outside the sandbox. Only ScopeTree patterns
	// read it; at most MaxTreeDepth entries are used.
	Tree []int
}

// Match is a pattern whose last step the observed event completed. The
// supervisor applies Verdict to that event.
type Match struct {
	Pattern string
	Risk    float64
	Verdict profiles.Action // ActionErrno, ActionKill or ActionLog
	Steps   []string        // one line per matched event, first step first
}

// Info describes a loaded pattern (for listings and explain output).
type Info struct {
	Name        string
	Description string
	Risk        float64
	Verdict     profiles.Action
	Scope       Scope
	Window      time.Duration
	Steps       []string // step labels
	Pos         profiles.Pos
}

// Limits bound the engine's memory. The zero value of a field means its
// default.
type Limits struct {
	PerPattern int // partial matches of one pattern owned by one process (default 8)
	PerProcess int // partial matches owned by one process (default 64)
	Total      int // partial matches in the engine (default 4096)
}

// MaxTreeDepth is how many of Event.Tree's ancestors are consulted.
const MaxTreeDepth = 32

// maxCount bounds step.count (the ring of timestamps a counting step keeps).
const maxCount = 1000

// maxCaptures bounds the named captures of one pattern.
const maxCaptures = 8

func (l Limits) withDefaults() Limits {
	if l.PerPattern <= 0 {
		l.PerPattern = 8
	}
	if l.PerProcess <= 0 {
		l.PerProcess = 64
	}
	if l.Total <= 0 {
		l.Total = 4096
	}
	return l
}

// source is where a capture takes its value from.
type source int

const (
	fromArg0 source = iota // ..fromArg5 = 5
	fromRet  source = 6
	fromPath source = 7
)

// argCond compares one argument's low 32 bits (the C int the kernel reads
// for descriptors and flags).
type argCond struct {
	index  int
	op     profiles.Op
	mask   uint32
	values []uint32 // any of (eq, masked_eq), none of (ne), one value otherwise
	ref    int      // capture index compared with (eq, ne), or -1
}

type addrSpec struct {
	any, notAllowed, ip, unix bool
	prefixes                  []netip.Prefix
}

// step is one compiled step.
type step struct {
	label    string
	syscalls []string // resolved names; empty: any
	kinds    uint32   // bit per analyzer.Kind; 0: any
	paths    []*rules.Glob
	pathRef  int // capture compared with Call.Path, or -1
	pathPID  int // 0 any, pidOther, pidSelf
	exe      []*rules.Glob
	notExe   []*rules.Glob
	argv     []string
	hasArgv  bool
	access   analyzer.Access
	addr     *addrSpec
	denied   int8 // -1 any, 0 must be false, 1 must be true
	flags    uint64
	args     []argCond
	count    int
	capture  int // capture index, or -1
	from     source
	sameProc bool
}

const (
	pidOther = 1
	pidSelf  = 2
)

type pattern struct {
	index   int
	name    string
	desc    string
	risk    float64
	verdict profiles.Action
	scope   Scope
	window  int64 // ns
	steps   []*step
	caps    []string // capture names, in binding order
	capPath []bool   // capture i holds a path
	pos     profiles.Pos
}

// cand is a (pattern, step) a call may be.
type cand struct {
	p *pattern
	s int
}

// Engine matches patterns against a stream of events. Load builds it;
// Observe and Forget may be called from any number of goroutines (one
// mutex serialises them: the outcome depends on the order events are
// observed in, so callers that want reproducible results feed events from
// one goroutine in notification order).
type Engine struct {
	patterns []*pattern
	byName   map[string][]cand
	byKind   [32][]cand
	anyCall  []cand
	lim      Limits

	mu    sync.Mutex
	procs map[int]*proc
	head  *state // oldest state (global order, for the Total limit)
	tail  *state
	total int
	gen   uint64 // events observed
}

// Patterns describes the loaded patterns in file order.
func (e *Engine) Patterns() []Info {
	out := make([]Info, len(e.patterns))
	for i, p := range e.patterns {
		labels := make([]string, len(p.steps))
		for j, s := range p.steps {
			labels[j] = s.label
		}
		out[i] = Info{Name: p.name, Description: p.desc, Risk: p.risk, Verdict: p.verdict, Scope: p.scope,
			Window: time.Duration(p.window), Steps: labels, Pos: p.pos}
	}
	return out
}

// Syscalls returns, sorted, the system calls some step names: the profile
// must notify them for the engine to see them (a step with kinds only, or
// with neither syscalls nor kinds, adds nothing: see AnyCall).
func (e *Engine) Syscalls() []string {
	out := make([]string, 0, len(e.byName))
	for n := range e.byName {
		out = append(out, n)
	}
	sortStrings(out)
	return out
}

// SetLimits replaces the memory limits (zero fields: defaults) and evicts
// what no longer fits. Call it before the first Observe.
func (e *Engine) SetLimits(l Limits) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lim = l.withDefaults()
	for e.total > e.lim.Total {
		e.remove(e.head)
	}
}

// States returns the number of partial matches held.
func (e *Engine) States() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total
}

// Builtin returns the engine of the shipped patterns (builtin.toml). With
// env.HOME empty the ${HOME} globs are left out (the /root and /home/*
// ones still apply).
func Builtin(env Env) *Engine {
	e, err := load(BuiltinFile, builtinTOML, env, true)
	if err != nil {
		panic("patterns: builtin.toml: " + err.Error()) // TestBuiltin keeps this unreachable
	}
	return e
}

// Load parses a pattern file. file names it in errors
// (`file:line:col: what`); every problem is returned at once, joined, each
// a *profiles.Error (profiles.Errors lists them).
func Load(file string, data []byte, env Env) (*Engine, error) {
	return load(file, data, env, false)
}
