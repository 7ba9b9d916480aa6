package profiles

import (
	"fmt"
	"net/netip"
	"time"
)

// Action is what the kernel filter (or, for notified calls, the supervisor)
// does with a system call.
type Action int

const (
	ActionUnset  Action = iota // not set here; inherited or the profile default
	ActionAllow                // run the call
	ActionErrno                // fail the call with Rule.Errno ("deny")
	ActionKill                 // kill the whole process (SECCOMP_RET_KILL_PROCESS)
	ActionLog                  // run the call and log it (SECCOMP_RET_LOG)
	ActionNotify               // hand the call to the supervisor (SECCOMP_RET_USER_NOTIF)
)

// Mode says whether verdicts are enforced or only recorded.
type Mode int

const (
	ModeEnforce Mode = iota // verdicts are carried out
	ModeAudit               // verdicts are decided and recorded; nothing is blocked
)

// Op compares one system call argument in a scalar rule.
type Op int

const (
	OpEq       Op = iota // arg == Value
	OpNe                 // arg != Value
	OpLt                 // arg <  Value
	OpLe                 // arg <= Value
	OpGt                 // arg >  Value
	OpGe                 // arg >= Value
	OpMaskedEq           // arg & Mask == Value
)

// Errno is a Linux error number used by ActionErrno.
type Errno uint16

// Pos is a place in a profile file, 1-based. The zero Pos means "built in".
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	switch {
	case p.File == "" && p.Line == 0:
		return "<builtin>"
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// ArgCond is one comparison of a system call argument; all the conditions
// of a Rule must hold (AND).
type ArgCond struct {
	Index int    // 0..5
	Op    Op     //
	Value uint64 //
	Mask  uint64 // only for OpMaskedEq
}

// Rule is one verdict for a set of system calls, as the profile wrote it,
// with groups expanded.
type Rule struct {
	Syscalls []string  // resolved names known on x86-64, deduplicated, in written order
	Action   Action    // never ActionUnset
	Errno    Errno     // for ActionErrno
	Args     []ArgCond // empty: unconditional
	Pos      Pos       // where it was written
	Source   string    // "syscalls.allow", "syscalls.rule[2]", "profile.default", ...
	Profile  string    // the profile (in an extends chain) that wrote it
	Entry    string    // the list entry as written ("@file-system", "openat"); "" for syscalls.rule
	Learned  *Evidence // set for a rule compiled from the learned overlay (overlay.go)
}

// SyscallPolicy is the resolved policy of one system call: the conditional
// rules are tried in order, the first whose conditions all hold decides;
// otherwise Action applies.
type SyscallPolicy struct {
	Name   string
	Nr     int    // x86-64 number
	Conds  []Rule // rules with Args, in profile order
	Action Action // when no conditional rule matches
	Errno  Errno  // for ActionErrno
	Pos    Pos    // where Action came from
	Source string // which list or default set Action
}

// Pattern is a path glob from [files] or [exec], as written (variables such
// as ${CWD} are expanded by the supervisor at launch).
type Pattern struct {
	Text string
	Pos  Pos
}

// Files holds the path rules decided by the supervisor.
type Files struct {
	Read  []Pattern
	Write []Pattern
	Exec  []Pattern
	Deny  []Pattern
}

// Endpoint is one [network] entry: a CIDR or host name with a port range,
// or an AF_UNIX path.
type Endpoint struct {
	Text   string
	Pos    Pos
	Prefix netip.Prefix // valid when the entry is an address or CIDR
	Host   string       // DNS name, resolved at launch; "" otherwise
	Any    bool         // "*": every address
	PortLo uint16       // 0..65535; "*" is 0..65535
	PortHi uint16
	Unix   string // AF_UNIX path (or "@name" for abstract); "" otherwise
}

// Network holds the socket-address rules decided by the supervisor.
type Network struct {
	Connect []Endpoint
	Bind    []Endpoint
	Deny    []Endpoint
}

// ExecRule is one [[exec.rule]]: a program path glob, optional argv
// patterns and parent chain, and a verdict.
type ExecRule struct {
	Path   Pattern
	Argv   []string // glob per argument; empty matches any argv
	Parent []string // comm or path globs of ancestors, nearest first
	Action Action
	Pos    Pos
}

// Exec holds the program-execution rules decided by the supervisor.
type Exec struct {
	Rules []ExecRule
}

// Supervisor configures how notified calls are decided.
type Supervisor struct {
	// Default is the verdict for a notified call that no path, network or
	// exec rule decides: ActionAllow, ActionErrno or ActionKill. A call the
	// supervisor cannot decode is always denied in enforce mode.
	Default      Action
	DefaultErrno Errno
	DefaultPos   Pos
	CacheSize    int // decision cache entries; 0 = built-in default
	// Advisory lists the call kinds (AdvisoryKinds) for which the profile
	// accepts an advisory allow: the supervisor checks the path or address
	// and lets the kernel run the call (CONTINUE), which a thread that
	// rewrites the argument after the check can get around. Kinds not
	// listed are denied when an allow cannot be carried out race-free.
	Advisory []string
	// Patterns turns on the multi-event behaviour patterns (reverse shell,
	// credential access, download-and-execute, privilege probing; see
	// supervisor/patterns). They see only notified calls: a profile that
	// enables them notifies what they watch (patterns.Engine.Syscalls).
	Patterns bool
}

// Analyzer configures the model tier (see the analyzer package).
type Analyzer struct {
	Model     string        // "builtin", "none", "http", "chat"
	Budget    time.Duration //
	OnTimeout Action        //
	Endpoint  string        // for "http" and "chat"
	ChatModel string        // for "chat": the model name sent to the endpoint
	// Sequence is what a thread the sequence model finds anomalous gets
	// (see supervisor/seqtap.go): "" or "report" (an event and the
	// summary, nothing more), "deny" (its notified calls are refused from
	// then on), "kill" (its process is killed).
	Sequence string
	// Audit: the model's verdicts are recorded (events, summary, stats)
	// but not carried out; the [supervisor] default decides. A shadow
	// run for a model, the way profile.mode = "audit" is for a profile.
	Audit bool

	// BudgetSet and OnTimeoutSet report that a profile file set budget or
	// on_timeout; otherwise the global configuration's values apply
	// (ApplyConfig).
	BudgetSet, OnTimeoutSet bool
}

// Profile is a loaded, validated and resolved profile: extends already
// applied. It is plain data, identical on every machine.
type Profile struct {
	Name        string
	Description string
	Extends     []string
	Sources     []string // files (or "builtin:NAME") that made it, base first

	Default      Action // for system calls no rule names
	DefaultErrno Errno
	DefaultPos   Pos
	Mode         Mode
	IOUring      bool // io_uring allowed knowingly ([profile] io_uring = true)

	Rules []Rule // every syscall rule in effect, base profiles first

	Files      Files
	Network    Network
	Exec       Exec
	Supervisor Supervisor
	Analyzer   Analyzer

	// Learned holds the overlay's verdicts on pointer arguments (a path or
	// an address, for one executable), which the supervisor answers
	// before asking the model; the overlay's scalar verdicts are in Rules
	// (Rule.Learned set). Empty without an overlay (ApplyOverlay).
	Learned []LearnedVerdict
}
