package profiles

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// OCISeccomp is the OCI runtime-spec linux.seccomp object
// (config-linux.md#seccomp), plus the fields of moby's profile format
// (archMap, per-rule includes/excludes and comment) that ImportOCI reads.
type OCISeccomp struct {
	DefaultAction    string       `json:"defaultAction"`
	DefaultErrnoRet  *uint        `json:"defaultErrnoRet,omitempty"`
	Architectures    []string     `json:"architectures,omitempty"`
	ArchMap          []OCIArchMap `json:"archMap,omitempty"`
	Flags            []string     `json:"flags,omitempty"`
	ListenerPath     string       `json:"listenerPath,omitempty"`
	ListenerMetadata string       `json:"listenerMetadata,omitempty"`
	Syscalls         []OCISyscall `json:"syscalls,omitempty"`
}

// OCIArchMap is one moby archMap entry.
type OCIArchMap struct {
	Architecture     string   `json:"architecture"`
	SubArchitectures []string `json:"subArchitectures"`
}

// OCISyscall is one linux.seccomp.syscalls entry: the action for names when
// every argument comparison holds.
type OCISyscall struct {
	Name     string     `json:"name,omitempty"` // moby's older single-name form
	Names    []string   `json:"names,omitempty"`
	Action   string     `json:"action"`
	ErrnoRet *uint      `json:"errnoRet,omitempty"`
	Args     []OCIArg   `json:"args,omitempty"`
	Comment  string     `json:"comment,omitempty"`
	Includes *OCIFilter `json:"includes,omitempty"`
	Excludes *OCIFilter `json:"excludes,omitempty"`
}

// OCIFilter is moby's includes/excludes: the rule applies when (includes)
// or unless (excludes) the container has the capabilities, runs on one of
// the architectures (Go GOARCH names) or on a kernel at least minKernel.
type OCIFilter struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

// OCIArg is one argument comparison. For SCMP_CMP_MASKED_EQ, libseccomp's
// datum_a (Value) is the mask and datum_b (ValueTwo) the value the masked
// argument must equal (seccomp_rule_add(3): SCMP_CMP_MASKED_EQ "matches if
// the masked argument value is equal to the masked datum value"; runc
// passes value and valueTwo through as datum_a and datum_b).
type OCIArg struct {
	Index    uint   `json:"index"`
	Value    uint64 `json:"value"`
	ValueTwo uint64 `json:"valueTwo,omitempty"`
	Op       string `json:"op"`
}

// OCIOptions are the seccomp-agent fields of an exported profile (runc's
// seccomp agent: runc sends the listener fd and the container state with
// ListenerMetadata over the unix socket at ListenerPath).
type OCIOptions struct {
	ListenerPath     string
	ListenerMetadata string
}

var ociOps = map[Op]string{
	OpEq: "SCMP_CMP_EQ", OpNe: "SCMP_CMP_NE", OpLt: "SCMP_CMP_LT", OpLe: "SCMP_CMP_LE",
	OpGt: "SCMP_CMP_GT", OpGe: "SCMP_CMP_GE", OpMaskedEq: "SCMP_CMP_MASKED_EQ",
}

// negated is the comparison true exactly when o is false (none for
// masked_eq).
var negated = map[Op]Op{OpEq: OpNe, OpNe: OpEq, OpLt: OpGe, OpGe: OpLt, OpLe: OpGt, OpGt: OpLe}

func ociAction(a Action) string {
	switch a {
	case ActionAllow:
		return "SCMP_ACT_ALLOW"
	case ActionErrno:
		return "SCMP_ACT_ERRNO"
	case ActionKill:
		return "SCMP_ACT_KILL_PROCESS"
	case ActionLog:
		return "SCMP_ACT_LOG"
	case ActionNotify:
		return "SCMP_ACT_NOTIFY"
	}
	return "SCMP_ACT_" + strings.ToUpper(a.String())
}

// ExportOCI translates p into an OCI runtime-spec linux.seccomp object for
// x86-64 (architectures lists only SCMP_ARCH_X86_64: libseccomp then kills
// i386 and x32 calls with the bad-arch action, as archangel's own filter
// does). kill becomes SCMP_ACT_KILL_PROCESS, notify SCMP_ACT_NOTIFY.
//
// libseccomp gives no order between rules of one system call, and an
// unconditional rule swallows conditional ones (seccomp_rule_add(3)), so
// each call's decision is written as disjoint regions: its conditional
// rules, and for the region where none holds the call's unconditional
// action, either left to defaultAction (when equal) or written as the
// negation of the conditions. When a fallback cannot be written (several
// conditional rules, or masked_eq) and differs from the default only by its
// errno, the default's errno is used and a warning returned; any other
// inexpressible fallback is an error.
//
// Errors, as runc refuses these: SCMP_ACT_NOTIFY as defaultAction, notify
// for write (the runtime writes to the agent with it), notify without a
// listener path; an audit-mode profile (export the enforce profile).
func ExportOCI(p *Profile, opts OCIOptions) (*OCISeccomp, []string, error) {
	if p.Mode == ModeAudit {
		return nil, nil, fmt.Errorf("export profile %q: mode = \"audit\" has no OCI equivalent (every deny would become SCMP_ACT_NOTIFY); export the enforce profile it extends", p.Name)
	}
	def, defErrno := p.Default, p.DefaultErrno
	if def == ActionUnset {
		def, defErrno = DefaultAction, DefaultErrno
	}
	if def == ActionNotify {
		return nil, nil, fmt.Errorf("export profile %q: default = \"notify\": runc refuses SCMP_ACT_NOTIFY as defaultAction; set default to allow or deny and notify calls by name", p.Name)
	}
	out := &OCISeccomp{
		DefaultAction: ociAction(def),
		Architectures: []string{"SCMP_ARCH_X86_64"},
		ListenerPath:  opts.ListenerPath, ListenerMetadata: opts.ListenerMetadata,
	}
	if def == ActionErrno {
		e := uint(defErrno)
		out.DefaultErrnoRet = &e
	}
	var warnings []string
	var errs []error
	type key struct {
		action Action
		errno  Errno
		args   string
	}
	idx := map[key]int{}
	add := func(name string, a Action, e Errno, args []ArgCond) {
		var oa []OCIArg
		for _, c := range args {
			arg := OCIArg{Index: uint(c.Index), Value: c.Value, Op: ociOps[c.Op]}
			if c.Op == OpMaskedEq {
				arg.Value, arg.ValueTwo = c.Mask, c.Value
			}
			oa = append(oa, arg)
		}
		k := key{a, e, fmt.Sprint(oa)}
		i, ok := idx[k]
		if !ok {
			s := OCISyscall{Action: ociAction(a), Args: oa}
			if a == ActionErrno {
				v := uint(e)
				s.ErrnoRet = &v
			}
			out.Syscalls = append(out.Syscalls, s)
			i = len(out.Syscalls) - 1
			idx[k] = i
		}
		if !slices.Contains(out.Syscalls[i].Names, name) {
			out.Syscalls[i].Names = append(out.Syscalls[i].Names, name)
		}
	}
	var notified []string
	for _, sp := range p.Policies() {
		if sp.Nr < 0 {
			continue
		}
		for _, c := range sp.Conds {
			if c.Action == ActionNotify || sp.Action == ActionNotify {
				notified = append(notified, sp.Name)
			}
		}
		if sp.Action == ActionNotify && len(sp.Conds) == 0 {
			notified = append(notified, sp.Name)
		}
		for _, c := range sp.Conds {
			if c.Action == sp.Action && c.Errno == sp.Errno {
				continue // the fallback decides the same
			}
			add(sp.Name, c.Action, c.Errno, c.Args)
		}
		sameAsDefault := sp.Action == def && (def != ActionErrno || sp.Errno == defErrno)
		if sameAsDefault {
			continue
		}
		var live []Rule
		for _, c := range sp.Conds {
			if c.Action != sp.Action || c.Errno != sp.Errno {
				live = append(live, c)
			}
		}
		if len(live) == 0 {
			add(sp.Name, sp.Action, sp.Errno, nil)
			continue
		}
		// The fallback region: no conditional rule holds. For one rule with
		// conditions c1..cn that is (not c1) or ... or (not cn): one entry
		// per negated condition, all with the fallback action.
		negs, ok := negateAll(live)
		if ok {
			for _, n := range negs {
				add(sp.Name, sp.Action, sp.Errno, []ArgCond{n})
			}
			continue
		}
		if sp.Action == def && def == ActionErrno {
			warnings = append(warnings, fmt.Sprintf("%s: where no conditional rule holds the profile denies with %s; OCI cannot write the negation of %d conditions, so the default's %s applies there",
				sp.Name, sp.Errno, len(live), defErrno))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %s where no conditional rule holds cannot be written for libseccomp (negating %d conditions); the default is %s",
			sp.Name, sp.Action, len(live), def))
	}
	slices.Sort(notified)
	notified = slices.Compact(notified)
	if slices.Contains(notified, "write") {
		errs = append(errs, errors.New("write is notified: runc refuses SCMP_ACT_NOTIFY for write (the runtime itself writes to the seccomp agent); allow write"))
	}
	if len(notified) > 0 && opts.ListenerPath == "" {
		errs = append(errs, fmt.Errorf("the profile notifies %s: runc needs a seccomp agent for SCMP_ACT_NOTIFY (--listener-path)", strings.Join(notified, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, warnings, fmt.Errorf("export profile %q as OCI seccomp: %w", p.Name, err)
	}
	return out, warnings, nil
}

// negateAll returns the conditions whose union is "no rule holds", when
// there is exactly one rule and each of its conditions has a negation.
func negateAll(rules []Rule) ([]ArgCond, bool) {
	if len(rules) != 1 {
		return nil, false
	}
	var out []ArgCond
	for _, c := range rules[0].Args {
		n, ok := negated[c.Op]
		if !ok {
			return nil, false
		}
		out = append(out, ArgCond{Index: c.Index, Op: n, Value: c.Value})
	}
	return out, true
}
