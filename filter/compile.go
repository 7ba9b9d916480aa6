package filter

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/archangel-sandbox/archangel/profiles"
)

// Arch is a target architecture.
type Arch int

const (
	ArchAMD64 Arch = iota // x86-64 (AUDIT_ARCH_X86_64)
)

// AuditArchX8664 is AUDIT_ARCH_X86_64, the arch word of seccomp_data.
const AuditArchX8664 = 0xc000003e

// x32SyscallBit marks x32 ABI syscall numbers on x86-64.
const x32SyscallBit = 0x40000000

func (a Arch) String() string {
	if a == ArchAMD64 {
		return "x86_64"
	}
	return fmt.Sprintf("arch(%d)", int(a))
}

// UnmarshalText accepts "x86_64" and "amd64".
func (a *Arch) UnmarshalText(b []byte) error {
	switch string(b) {
	case "x86_64", "amd64":
		*a = ArchAMD64
		return nil
	}
	return fmt.Errorf("unknown architecture %q (known: x86_64)", b)
}

// Seccomp return values (SECCOMP_RET_*).
const (
	RetKillProcess = 0x80000000
	RetKillThread  = 0x00000000
	RetTrap        = 0x00030000
	RetErrno       = 0x00050000
	RetUserNotif   = 0x7fc00000
	RetTrace       = 0x7ff00000
	RetLog         = 0x7ffc0000
	RetAllow       = 0x7fff0000
	retActionFull  = 0xffff0000
	retData        = 0x0000ffff
)

// Options select what Compile produces.
type Options struct {
	Arch Arch
	Mode profiles.Mode
	// NotifyAllowed names system calls whose allow (by a rule or the
	// default) the kernel turns into a notification, so that the
	// supervisor sees every one of them; it answers them with the
	// profile's verdict. archangel uses it for the calls that change a
	// thread's identity (execve, the setuid family, capset...), whose
	// cached view it must drop. Denials and kills stay in the kernel.
	NotifyAllowed []string
}

// Insn is one classic BPF instruction (struct sock_filter).
type Insn struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}

// Program is a compiled filter: plain data, identical on every machine for
// the same profile and options.
type Program struct {
	Arch    Arch
	Mode    profiles.Mode
	Profile string
	Insns   []Insn
	// Notified lists the syscall numbers whose verdict can be notify; -1
	// stands for "every syscall no rule names" (a notify default).
	Notified []int
	Hash     string // sha256 of Bytes, hex
}

// maxInsns is BPF_MAXINSNS.
const maxInsns = 4096

// Bytes returns the program as the kernel takes it: an array of struct
// sock_filter, little endian.
func (p *Program) Bytes() []byte {
	b := make([]byte, 8*len(p.Insns))
	for i, in := range p.Insns {
		binary.LittleEndian.PutUint16(b[8*i:], in.Code)
		b[8*i+2], b[8*i+3] = in.Jt, in.Jf
		binary.LittleEndian.PutUint32(b[8*i+4:], in.K)
	}
	return b
}

// Ret returns the SECCOMP_RET_* value for an action in the given mode.
func Ret(a profiles.Action, errno profiles.Errno, mode profiles.Mode) (uint32, error) {
	if mode == profiles.ModeAudit && (a == profiles.ActionErrno || a == profiles.ActionKill) {
		return RetUserNotif, nil
	}
	switch a {
	case profiles.ActionAllow:
		return RetAllow, nil
	case profiles.ActionErrno:
		if errno == 0 || errno > retData {
			return 0, fmt.Errorf("errno %d out of range", errno)
		}
		return RetErrno | uint32(errno), nil
	case profiles.ActionKill:
		return RetKillProcess, nil
	case profiles.ActionLog:
		return RetLog, nil
	case profiles.ActionNotify:
		return RetUserNotif, nil
	}
	return 0, fmt.Errorf("action %v has no seccomp return value", a)
}

// Decode maps a SECCOMP_RET_* value back to an action.
func Decode(ret uint32) (profiles.Action, profiles.Errno) {
	switch ret & retActionFull {
	case RetAllow:
		return profiles.ActionAllow, 0
	case RetErrno:
		return profiles.ActionErrno, profiles.Errno(ret & retData)
	case RetKillProcess, RetKillThread:
		return profiles.ActionKill, 0
	case RetLog:
		return profiles.ActionLog, 0
	case RetUserNotif:
		return profiles.ActionNotify, 0
	}
	return profiles.ActionUnset, 0
}

// notifyAllowed returns pols with every allow of the named calls turned
// into notify (Options.NotifyAllowed), adding a policy for a call that
// only the profile default decides.
func notifyAllowed(p *profiles.Profile, pols []profiles.SyscallPolicy, names []string) []profiles.SyscallPolicy {
	if len(names) == 0 {
		return pols
	}
	allows := func(a profiles.Action) bool { return a == profiles.ActionAllow || a == profiles.ActionLog }
	for _, name := range names {
		if _, ok := profiles.SyscallNr(name); !ok {
			continue
		}
		i := slices.IndexFunc(pols, func(sp profiles.SyscallPolicy) bool { return sp.Name == name })
		var sp profiles.SyscallPolicy
		if i >= 0 {
			sp = pols[i]
		} else {
			sp = p.Policy(name)
		}
		changed := false
		if allows(sp.Action) {
			sp.Action, changed = profiles.ActionNotify, true
		}
		conds := slices.Clone(sp.Conds)
		for j := range conds {
			if allows(conds[j].Action) {
				conds[j].Action, changed = profiles.ActionNotify, true
			}
		}
		sp.Conds = conds
		switch {
		case i >= 0:
			pols[i] = sp
		case changed:
			pols = append(pols, sp)
		}
	}
	slices.SortStableFunc(pols, func(a, b profiles.SyscallPolicy) int { return a.Nr - b.Nr })
	return pols
}

// Compile generates the program for p.
func Compile(p *profiles.Profile, opts Options) (*Program, error) {
	if opts.Arch != ArchAMD64 {
		return nil, fmt.Errorf("compile %q: architecture %v is not supported", p.Name, opts.Arch)
	}
	g := &gen{rets: map[uint32]int{}}
	def, err := Ret(p.Default, p.DefaultErrno, opts.Mode)
	if err != nil {
		return nil, fmt.Errorf("compile %q: default: %w", p.Name, err)
	}
	prog := &Program{Arch: opts.Arch, Mode: opts.Mode, Profile: p.Name}
	if def == RetUserNotif {
		prog.Notified = append(prog.Notified, -1)
	}
	type entry struct {
		nr    int
		label int
	}
	var entries []entry
	kill := g.ret(RetKillProcess)
	defLabel := g.ret(def)
	// Per-syscall blocks, emitted back to front (see gen).
	pols := notifyAllowed(p, p.Policies(), opts.NotifyAllowed)
	for i := len(pols) - 1; i >= 0; i-- {
		sp := pols[i]
		if sp.Nr < 0 {
			continue
		}
		fall, err := Ret(sp.Action, sp.Errno, opts.Mode)
		if err != nil {
			return nil, fmt.Errorf("compile %q: %s: %w", p.Name, sp.Name, err)
		}
		notified := fall == RetUserNotif
		next := g.ret(fall)
		for j := len(sp.Conds) - 1; j >= 0; j-- {
			r := sp.Conds[j]
			ret, err := Ret(r.Action, r.Errno, opts.Mode)
			if err != nil {
				return nil, fmt.Errorf("compile %q: %s rule at %s: %w", p.Name, sp.Name, r.Pos, err)
			}
			notified = notified || ret == RetUserNotif
			if ret == fall && len(sp.Conds) == 1 {
				continue // same verdict either way
			}
			next = g.conds(r.Args, g.ret(ret), next)
		}
		if notified {
			prog.Notified = append(prog.Notified, sp.Nr)
		}
		if next == defLabel {
			continue // nothing to say beyond the default
		}
		entries = append(entries, entry{sp.Nr, next})
	}
	slices.SortFunc(entries, func(a, b entry) int { return a.nr - b.nr })
	slices.Sort(prog.Notified)
	// Segments: maximal runs of consecutive numbers with the same block,
	// the gaps going to the default; the search compares against segment
	// starts only, so runs of allowed calls cost one comparison, not one
	// per call.
	var segs []segment
	next := 0
	for _, e := range entries {
		if e.nr > next {
			segs = appendSeg(segs, segment{start: next, label: defLabel})
		}
		segs = appendSeg(segs, segment{start: e.nr, label: e.label})
		next = e.nr + 1
	}
	segs = appendSeg(segs, segment{start: next, label: defLabel})
	search := g.search(segs)
	// Header: architecture, then the x32 bit, then the search.
	g.jump(bpfJMP|bpfJGE|bpfK, x32SyscallBit, kill, search)
	g.emit(Insn{Code: bpfLD | bpfW | bpfABS, K: offNr})
	arch := g.pos()
	g.jump(bpfJMP|bpfJEQ|bpfK, AuditArchX8664, arch, kill)
	g.emit(Insn{Code: bpfLD | bpfW | bpfABS, K: offArch})
	if g.err != nil {
		return nil, fmt.Errorf("compile %q: %w", p.Name, g.err)
	}
	prog.Insns = g.program()
	if len(prog.Insns) > maxInsns {
		return nil, fmt.Errorf("compile %q: program has %d instructions, the kernel takes at most %d", p.Name, len(prog.Insns), maxInsns)
	}
	sum := sha256.Sum256(prog.Bytes())
	prog.Hash = hex.EncodeToString(sum[:])
	return prog, nil
}

// BPF opcodes used here (linux/bpf_common.h).
const (
	bpfLD   = 0x00
	bpfALU  = 0x04
	bpfJMP  = 0x05
	bpfRET  = 0x06
	bpfW    = 0x00
	bpfABS  = 0x20
	bpfK    = 0x00
	bpfAND  = 0x50
	bpfJA   = 0x00
	bpfJEQ  = 0x10
	bpfJGT  = 0x20
	bpfJGE  = 0x30
	bpfJSET = 0x40

	offNr   = 0
	offArch = 4
	offArgs = 16
)

// gen emits a program back to front: every jump target already exists
// when the jump is emitted, so offsets are exact, and a target more than
// 255 instructions away gets a BPF_JA trampoline (32-bit offset) right
// after the jump. Labels are positions counted from the end.
type gen struct {
	rev  []Insn         // instructions, last first
	rets map[uint32]int // shared return instructions by value
	err  error
}

func (g *gen) pos() int { return len(g.rev) - 1 }

func (g *gen) emit(in Insn) int {
	g.rev = append(g.rev, in)
	return g.pos()
}

func (g *gen) ret(v uint32) int {
	if l, ok := g.rets[v]; ok {
		return l
	}
	l := g.emit(Insn{Code: bpfRET | bpfK, K: v})
	g.rets[v] = l
	return l
}

// jump emits a conditional jump to labels t (condition true) and f.
func (g *gen) jump(code uint16, k uint32, t, f int) int {
	// The instruction will sit at position q; the one after it at q-1.
	dist := func(target, q int) int { return (q - 1) - target }
	q := len(g.rev)
	if dist(t, q) > 255 {
		t = g.ja(t)
		q = len(g.rev)
	}
	if dist(f, q) > 255 {
		f = g.ja(f)
		q = len(g.rev)
	}
	if dist(t, q) > 255 || dist(f, q) > 255 {
		// Both needed trampolines and the first is now out of reach again
		// only if the second pushed it: impossible with one-slot trampolines.
		g.err = errors.New("internal: jump out of range")
	}
	return g.emit(Insn{Code: code, Jt: uint8(dist(t, q)), Jf: uint8(dist(f, q)), K: k})
}

func (g *gen) ja(target int) int {
	q := len(g.rev)
	return g.emit(Insn{Code: bpfJMP | bpfJA, K: uint32((q - 1) - target)})
}

// program returns the instructions in execution order.
func (g *gen) program() []Insn {
	out := slices.Clone(g.rev)
	slices.Reverse(out)
	return out
}

// segment is a run of syscall numbers, from start up to the next
// segment's start, that share one block.
type segment struct {
	start int
	label int
}

func appendSeg(segs []segment, s segment) []segment {
	if n := len(segs); n > 0 && segs[n-1].label == s.label {
		return segs // the run continues
	}
	return append(segs, s)
}

// search emits a binary search over segments that cover every number from
// 0 up (A holds the syscall number) and returns its entry label.
func (g *gen) search(segs []segment) int {
	if len(segs) == 1 {
		return segs[0].label
	}
	mid := len(segs) / 2
	right := g.search(segs[mid:])
	left := g.search(segs[:mid])
	return g.jump(bpfJMP|bpfJGE|bpfK, uint32(segs[mid].start), right, left)
}

// conds emits "if every condition holds goto ok else goto fail".
func (g *gen) conds(cs []profiles.ArgCond, ok, fail int) int {
	next := ok
	for i := len(cs) - 1; i >= 0; i-- {
		next = g.cond(cs[i], next, fail)
	}
	return next
}

// cond emits one 64-bit comparison of an argument as two 32-bit halves
// (seccomp_data.args are 64-bit little endian words).
func (g *gen) cond(c profiles.ArgCond, ok, fail int) int {
	if c.Index < 0 || c.Index > 5 {
		g.err = fmt.Errorf("argument index %d out of range", c.Index)
		return fail
	}
	lo := uint32(offArgs + 8*c.Index)
	hi := lo + 4
	vl, vh := uint32(c.Value), uint32(c.Value>>32)
	ldLo := func() int { return g.emit(Insn{Code: bpfLD | bpfW | bpfABS, K: lo}) }
	ldHi := func() int { return g.emit(Insn{Code: bpfLD | bpfW | bpfABS, K: hi}) }
	switch c.Op {
	case profiles.OpEq, profiles.OpNe:
		t, f := ok, fail
		if c.Op == profiles.OpNe {
			t, f = fail, ok
		}
		g.jump(bpfJMP|bpfJEQ|bpfK, vl, t, f)
		loL := ldLo()
		g.jump(bpfJMP|bpfJEQ|bpfK, vh, loL, f)
		return ldHi()
	case profiles.OpGt, profiles.OpGe, profiles.OpLt, profiles.OpLe:
		// gt/ge: hi > vh, or hi == vh and lo > vl (lo >= vl); lt/le are
		// the negations of ge/gt.
		t, f := ok, fail
		loOp := uint16(bpfJGT)
		switch c.Op {
		case profiles.OpGe:
			loOp = bpfJGE
		case profiles.OpLt:
			loOp, t, f = bpfJGE, fail, ok
		case profiles.OpLe:
			t, f = fail, ok
		}
		g.jump(bpfJMP|loOp|bpfK, vl, t, f)
		loL := ldLo()
		eq := g.jump(bpfJMP|bpfJEQ|bpfK, vh, loL, f)
		g.jump(bpfJMP|bpfJGT|bpfK, vh, t, eq)
		return ldHi()
	case profiles.OpMaskedEq:
		ml, mh := uint32(c.Mask), uint32(c.Mask>>32)
		g.jump(bpfJMP|bpfJEQ|bpfK, vl, ok, fail)
		g.emit(Insn{Code: bpfALU | bpfAND | bpfK, K: ml})
		loL := ldLo()
		g.jump(bpfJMP|bpfJEQ|bpfK, vh, loL, fail)
		g.emit(Insn{Code: bpfALU | bpfAND | bpfK, K: mh})
		return ldHi()
	}
	g.err = fmt.Errorf("unknown comparison %v", c.Op)
	return fail
}
