package filter

import (
	"sync"

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

// policyIndex maps syscall numbers to policies, built once per profile.
type policyIndex map[int32]profiles.SyscallPolicy

var indexes sync.Map // *profiles.Profile -> policyIndex

func index(p *profiles.Profile) policyIndex {
	if v, ok := indexes.Load(p); ok {
		return v.(policyIndex)
	}
	idx := policyIndex{}
	for _, sp := range p.Policies() {
		if sp.Nr >= 0 {
			idx[int32(sp.Nr)] = sp
		}
	}
	v, _ := indexes.LoadOrStore(p, idx)
	return v.(policyIndex)
}

// Eval decides d directly from the profile's semantics, the way the
// compiled program must: foreign architecture and x32 numbers are killed;
// a syscall's conditional rules are tried in order and the first whose
// conditions all hold decides; otherwise its unconditional action, or the
// profile default. In audit mode deny and kill become notify.
func Eval(p *profiles.Profile, opts Options, d Data) Verdict {
	if d.Arch != AuditArchX8664 {
		return Verdict{Action: profiles.ActionKill, Source: "arch"}
	}
	if uint32(d.Nr)&x32SyscallBit != 0 || d.Nr < 0 && uint32(d.Nr) >= x32SyscallBit {
		return Verdict{Action: profiles.ActionKill, Source: "arch.x32"}
	}
	v := evalEnforce(p, d)
	if opts.Mode == profiles.ModeAudit && (v.Action == profiles.ActionErrno || v.Action == profiles.ActionKill) {
		v.Action, v.Errno = profiles.ActionNotify, 0
	}
	return v
}

func evalEnforce(p *profiles.Profile, d Data) Verdict {
	sp, ok := index(p)[d.Nr]
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
