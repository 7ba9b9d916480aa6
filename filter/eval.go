package filter

import (
	"github.com/archangel-sandbox/archangel/profiles"
)

// Data is struct seccomp_data, the input of a seccomp program.
type Data struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

// Verdict is what a profile decides for one call.
type Verdict struct {
	Action profiles.Action
	Errno  profiles.Errno
	Pos    profiles.Pos // where the deciding rule (or default) was written
	Source string       // "syscalls.deny", "syscalls.rule[2]", "profile.default", "arch", ...
}

// Evaluator decides calls from a profile's semantics with the profile's
// policies indexed by syscall number. Build one per loaded profile.
type Evaluator struct {
	p   *profiles.Profile
	idx map[int32]profiles.SyscallPolicy
}

// NewEvaluator indexes p's policies.
func NewEvaluator(p *profiles.Profile) *Evaluator {
	e := &Evaluator{p: p, idx: map[int32]profiles.SyscallPolicy{}}
	for _, sp := range p.Policies() {
		if sp.Nr >= 0 {
			e.idx[int32(sp.Nr)] = sp
		}
	}
	return e
}

// Eval is Evaluator.Eval for a one-off decision (it indexes p each call).
func Eval(p *profiles.Profile, opts Options, d Data) Verdict {
	return NewEvaluator(p).Eval(opts, d)
}

// Eval decides d directly from the profile's semantics, the way the
// compiled program must: foreign architecture and x32 numbers are killed;
// a syscall's conditional rules are tried in order and the first whose
// conditions all hold decides; otherwise its unconditional action, or the
// profile default. In audit mode deny and kill become notify.
func (e *Evaluator) Eval(opts Options, d Data) Verdict {
	if d.Arch != AuditArchX8664 {
		return Verdict{Action: profiles.ActionKill, Source: "arch"}
	}
	if uint32(d.Nr)&x32SyscallBit != 0 || d.Nr < 0 && uint32(d.Nr) >= x32SyscallBit {
		return Verdict{Action: profiles.ActionKill, Source: "arch.x32"}
	}
	v := e.evalEnforce(d)
	if opts.Mode == profiles.ModeAudit && (v.Action == profiles.ActionErrno || v.Action == profiles.ActionKill) {
		v.Action, v.Errno = profiles.ActionNotify, 0
	}
	return v
}

func (e *Evaluator) evalEnforce(d Data) Verdict {
	p := e.p
	sp, ok := e.idx[d.Nr]
	if !ok {
		return Verdict{Action: p.Default, Errno: p.DefaultErrno, Pos: p.DefaultPos, Source: "profile.default"}
	}
	for _, r := range sp.Conds {
		if matchAll(r.Args, &d) {
			return Verdict{Action: r.Action, Errno: r.Errno, Pos: r.Pos, Source: r.Source}
		}
	}
	return Verdict{Action: sp.Action, Errno: sp.Errno, Pos: sp.Pos, Source: sp.Source}
}

func matchAll(cs []profiles.ArgCond, d *Data) bool {
	for _, c := range cs {
		if !Match(c, d.Args[c.Index]) {
			return false
		}
	}
	return true
}

// Match reports whether argument value v satisfies c (64-bit, unsigned).
func Match(c profiles.ArgCond, v uint64) bool {
	switch c.Op {
	case profiles.OpEq:
		return v == c.Value
	case profiles.OpNe:
		return v != c.Value
	case profiles.OpLt:
		return v < c.Value
	case profiles.OpLe:
		return v <= c.Value
	case profiles.OpGt:
		return v > c.Value
	case profiles.OpGe:
		return v >= c.Value
	case profiles.OpMaskedEq:
		return v&c.Mask == c.Value
	}
	return false
}
