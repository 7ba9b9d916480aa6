//go:build libseccomp

package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/profiles"
)

const (
	auditArchX8664 = 0xc000003e
	auditArchI386  = 0x40000003
	eperm          = 1
	eacces         = 13
)

// seccompData is struct seccomp_data.
type seccompData struct {
	nr   uint32
	arch uint32
	ip   uint64
	args [6]uint64
}

func (d *seccompData) word(off uint32) (uint32, error) {
	switch {
	case off == 0:
		return d.nr, nil
	case off == 4:
		return d.arch, nil
	case off == 8:
		return uint32(d.ip), nil
	case off == 12:
		return uint32(d.ip >> 32), nil
	case off >= 16 && off < 64 && off%4 == 0:
		a := d.args[(off-16)/8]
		if off%8 != 0 {
			return uint32(a >> 32), nil
		}
		return uint32(a), nil
	}
	return 0, fmt.Errorf("load at offset %d", off)
}

// run is a minimal classic BPF interpreter for the instructions libseccomp
// emits for seccomp; the filter package has the full VM. It keeps this
// package free of project imports.
func run(prog []SockFilter, d seccompData) (uint32, error) {
	var a, x uint32
	var mem [16]uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case 0x20: // ld [k]
			w, err := d.word(in.K)
			if err != nil {
				return 0, fmt.Errorf("pc %d: %w", pc, err)
			}
			a = w
		case 0x00: // ld #k
			a = in.K
		case 0x60: // ld M[k]
			a = mem[in.K&15]
		case 0x61: // ldx M[k]
			x = mem[in.K&15]
		case 0x02: // st M[k]
			mem[in.K&15] = a
		case 0x03: // stx M[k]
			mem[in.K&15] = x
		case 0x54: // and #k
			a &= in.K
		case 0x07: // tax
			x = a
		case 0x87: // txa
			a = x
		case 0x05: // ja
			pc += int(in.K)
		case 0x15, 0x25, 0x35, 0x45: // jeq, jgt, jge, jset #k
			var ok bool
			switch in.Code {
			case 0x15:
				ok = a == in.K
			case 0x25:
				ok = a > in.K
			case 0x35:
				ok = a >= in.K
			case 0x45:
				ok = a&in.K != 0
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case 0x06: // ret #k
			return in.K, nil
		default:
			return 0, fmt.Errorf("pc %d: opcode %#x not handled by the test VM", pc, in.Code)
		}
	}
	return 0, fmt.Errorf("fell off the end")
}

func dump(prog []SockFilter) string {
	var b strings.Builder
	for i, in := range prog {
		fmt.Fprintf(&b, "%4d: code=%#04x jt=%d jf=%d k=%#x\n", i, in.Code, in.Jt, in.Jf, in.K)
	}
	return b.String()
}

func build(t *testing.T, spec FilterSpec) []SockFilter {
	t.Helper()
	prog, err := BuildFilter(spec)
	if err != nil {
		t.Fatalf("BuildFilter: %v", err)
	}
	return prog
}

func expect(t *testing.T, prog []SockFilter, d seccompData, want uint32) {
	t.Helper()
	got, err := run(prog, d)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, dump(prog))
	}
	if got != want {
		t.Fatalf("nr %d arch %#x args %#x: got %#x, want %#x\n%s", int32(d.nr), d.arch, d.args, got, want, dump(prog))
	}
}

func call(nr int, args ...uint64) seccompData {
	d := seccompData{nr: uint32(nr), arch: auditArchX8664}
	copy(d.args[:], args)
	return d
}

func TestBuildFilterArch(t *testing.T) {
	prog := build(t, FilterSpec{
		DefaultAction: RetErrno | eperm,
		BadArchAction: RetKillProcess,
		Rules:         []FilterRule{{Nr: 0, Action: RetAllow}, {Nr: 1, Action: RetAllow}},
	})
	expect(t, prog, call(0), RetAllow)
	expect(t, prog, call(1), RetAllow)
	expect(t, prog, call(2), RetErrno|eperm)
	i386 := call(0)
	i386.arch = auditArchI386
	expect(t, prog, i386, RetKillProcess)
	// x32: same AUDIT_ARCH, numbers with bit 30 set. libseccomp emits the
	// check itself when x86-64 is the only arch in the filter.
	expect(t, prog, call(0x40000000|0), RetKillProcess)
	expect(t, prog, call(0x40000000|1), RetKillProcess)
	expect(t, prog, call(math.MaxInt32), RetKillProcess)
	// libseccomp lets nr -1 (0xffffffff) through to the default: it is
	// what a tracer's skipped call looks like, not an x32 number.
	expect(t, prog, call(-1), RetErrno|eperm)
	// Numbers just below the x32 bit are ordinary unknown syscalls.
	expect(t, prog, call(0x3fffffff), RetErrno|eperm)
}

// Raw numbers newer than libseccomp 2.5.4's tables still work.
func TestBuildFilterNewSyscalls(t *testing.T) {
	const mseal, setxattrat, far = 462, 463, 1000
	prog := build(t, FilterSpec{
		DefaultAction: RetAllow,
		BadArchAction: RetKillProcess,
		Rules: []FilterRule{
			{Nr: mseal, Action: RetErrno | eacces},
			{Nr: setxattrat, Action: RetUserNotif},
			{Nr: far, Action: RetLog, Conds: []FilterCond{{Arg: 0, Op: OpEq, A: 7}}},
		},
	})
	expect(t, prog, call(mseal), RetErrno|eacces)
	expect(t, prog, call(setxattrat), RetUserNotif)
	expect(t, prog, call(far, 7), RetLog)
	expect(t, prog, call(far, 8), RetAllow)
	expect(t, prog, call(464), RetAllow)
}

func TestBuildFilterActions(t *testing.T) {
	acts := []uint32{RetAllow, RetErrno | eacces, RetKillProcess, RetKillThread, RetLog, RetUserNotif, RetTrap, RetTrace | 5}
	for _, def := range acts {
		var rules []FilterRule
		for i, a := range acts {
			rules = append(rules, FilterRule{Nr: i, Action: a})
		}
		prog := build(t, FilterSpec{DefaultAction: def, BadArchAction: RetKillProcess, Rules: rules})
		for i, a := range acts {
			expect(t, prog, call(i), a)
		}
		expect(t, prog, call(100), def)
	}
}

// Every comparison at the boundaries of its operand, in both 32-bit halves.
func TestBuildFilterCompare(t *testing.T) {
	values := []uint64{0, 1, 7, math.MaxUint32, math.MaxUint32 + 1, 0x1_0000_0005, 0x7fffffff_ffffffff, math.MaxUint64}
	ops := []struct {
		op FilterOp
		f  func(arg, v uint64) bool
	}{
		{OpEq, func(a, v uint64) bool { return a == v }},
		{OpNe, func(a, v uint64) bool { return a != v }},
		{OpLt, func(a, v uint64) bool { return a < v }},
		{OpLe, func(a, v uint64) bool { return a <= v }},
		{OpGt, func(a, v uint64) bool { return a > v }},
		{OpGe, func(a, v uint64) bool { return a >= v }},
	}
	for _, o := range ops {
		for _, v := range values {
			t.Run(fmt.Sprintf("op%d/%#x", o.op, v), func(t *testing.T) {
				prog := build(t, FilterSpec{
					DefaultAction: RetErrno | eperm,
					BadArchAction: RetKillProcess,
					Rules:         []FilterRule{{Nr: 9, Action: RetAllow, Conds: []FilterCond{{Arg: 2, Op: o.op, A: v}}}},
				})
				for _, arg := range probes(v) {
					want := RetErrno | eperm
					if o.f(arg, v) {
						want = RetAllow
					}
					expect(t, prog, call(9, 0, 0, arg), want)
				}
			})
		}
	}
}

func TestBuildFilterMaskedEq(t *testing.T) {
	for _, c := range []struct{ mask, value uint64 }{
		{0x10000000, 0}, {0x10000000, 0x10000000}, {0xff_0000_00ff, 0x12_0000_0034}, {math.MaxUint64, 5}, {0, 0},
	} {
		prog := build(t, FilterSpec{
			DefaultAction: RetAllow,
			BadArchAction: RetKillProcess,
			Rules:         []FilterRule{{Nr: 56, Action: RetErrno | eperm, Conds: []FilterCond{{Arg: 0, Op: OpMaskedEq, A: c.mask, B: c.value}}}},
		})
		for _, arg := range append(probes(c.value), probes(c.mask)...) {
			want := RetAllow
			if arg&c.mask == c.value {
				want = RetErrno | eperm
			}
			expect(t, prog, call(56, arg), want)
		}
	}
	if _, err := BuildFilter(FilterSpec{DefaultAction: RetAllow, BadArchAction: RetKillProcess,
		Rules: []FilterRule{{Nr: 1, Action: RetLog, Conds: []FilterCond{{Op: OpMaskedEq, A: 1, B: 2}}}}}); err == nil {
		t.Fatal("value outside mask accepted")
	}
}

// Disjoint rules of one syscall with different actions, and several
// conditions (on several arguments) in one rule.
func TestBuildFilterDisjointRules(t *testing.T) {
	prog := build(t, FilterSpec{
		DefaultAction: RetKillProcess,
		BadArchAction: RetKillProcess,
		Rules: []FilterRule{
			{Nr: 41, Action: RetAllow, Conds: []FilterCond{{Arg: 0, Op: OpEq, A: 1}}},
			{Nr: 41, Action: RetUserNotif, Conds: []FilterCond{{Arg: 0, Op: OpEq, A: 2}}},
			{Nr: 41, Action: RetErrno | eacces, Conds: []FilterCond{{Arg: 0, Op: OpEq, A: 10}, {Arg: 1, Op: OpGe, A: 5}}},
			{Nr: 41, Action: RetLog, Conds: []FilterCond{{Arg: 0, Op: OpGe, A: 100}, {Arg: 2, Op: OpLt, A: 200}}},
		},
	})
	expect(t, prog, call(41, 1), RetAllow)
	expect(t, prog, call(41, 2), RetUserNotif)
	expect(t, prog, call(41, 3), RetKillProcess)
	expect(t, prog, call(41, 10, 5), RetErrno|eacces)
	expect(t, prog, call(41, 10, 4), RetKillProcess)
	expect(t, prog, call(41, 99), RetKillProcess)
	expect(t, prog, call(41, 100, 0, 199), RetLog)
	expect(t, prog, call(41, 100, 0, 200), RetKillProcess)
	expect(t, prog, call(41, 1<<40, 0, 0), RetLog)
}

func TestBuildFilterRedundant(t *testing.T) {
	// Rules with the default action are dropped, not refused.
	prog := build(t, FilterSpec{
		DefaultAction: RetAllow,
		BadArchAction: RetKillProcess,
		Rules: []FilterRule{
			{Nr: 0, Action: RetAllow},
			{Nr: 1, Action: RetAllow, Conds: []FilterCond{{Arg: 0, Op: OpEq, A: 1}}},
			{Nr: 1, Action: RetErrno | eperm, Conds: []FilterCond{{Arg: 0, Op: OpEq, A: 2}}},
			{Nr: 2, Action: RetLog},
			{Nr: 2, Action: RetLog},
		},
	})
	expect(t, prog, call(0), RetAllow)
	expect(t, prog, call(1, 1), RetAllow)
	expect(t, prog, call(1, 2), RetErrno|eperm)
	expect(t, prog, call(2), RetLog)

	for name, rules := range map[string][]FilterRule{
		"uncond+cond": {{Nr: 1, Action: RetLog}, {Nr: 1, Action: RetErrno | eperm, Conds: []FilterCond{{Arg: 0, Op: OpEq, A: 2}}}},
		"two actions": {{Nr: 1, Action: RetLog}, {Nr: 1, Action: RetUserNotif}},
		"negative":    {{Nr: -1, Action: RetLog}},
		"bad op":      {{Nr: 1, Action: RetLog, Conds: []FilterCond{{Op: 99}}}},
		"bad arg":     {{Nr: 1, Action: RetLog, Conds: []FilterCond{{Arg: 6}}}},
		"bad action":  {{Nr: 1, Action: RetAllow | 1}},
		"same arg":    {{Nr: 1, Action: RetLog, Conds: []FilterCond{{Op: OpGe, A: 1}, {Op: OpLt, A: 9}}}},
	} {
		if _, err := BuildFilter(FilterSpec{DefaultAction: RetAllow, BadArchAction: RetKillProcess, Rules: rules}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBuildFilterDeterministic(t *testing.T) {
	spec := FilterSpec{
		DefaultAction: RetErrno | eperm,
		BadArchAction: RetKillProcess,
	}
	for nr := range 300 {
		spec.Rules = append(spec.Rules, FilterRule{Nr: nr, Action: RetAllow})
	}
	spec.Rules = append(spec.Rules, FilterRule{Nr: 400, Action: RetLog, Conds: []FilterCond{{Arg: 1, Op: OpGt, A: 1 << 40}}})
	a, b := build(t, spec), build(t, spec)
	if dump(a) != dump(b) {
		t.Fatal("two builds differ")
	}
}

func probes(v uint64) []uint64 {
	return []uint64{0, 1, math.MaxUint64, math.MaxUint32, math.MaxUint32 + 1,
		v, v - 1, v + 1, v ^ 1<<32, v + 1<<32, v - 1<<32, v &^ 0xffffffff, v | 0xffffffff, v&^0xffffffff - 1}
}

// TestBuildFilterAgreesWithFilterCompile is a differential test of
// archangel's own generator (filter.Compile) against libseccomp: random
// profiles whose conditional rules are disjoint (the only kind libseccomp
// can express faithfully, see FilterSpec), compiled both ways, run in the
// filter package's VM on boundary values, must return the same action.
func TestBuildFilterAgreesWithFilterCompile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	actions := []profiles.Action{profiles.ActionAllow, profiles.ActionErrno, profiles.ActionKill, profiles.ActionLog, profiles.ActionNotify}
	interesting := []uint64{0, 1, 5, 0xff, math.MaxUint32, math.MaxUint32 + 1, 0x1_0000_0005, 1 << 63, math.MaxUint64}
	ops := []profiles.Op{profiles.OpEq, profiles.OpNe, profiles.OpLt, profiles.OpLe, profiles.OpGt, profiles.OpGe, profiles.OpMaskedEq}
	for iter := range 300 {
		p := &profiles.Profile{Name: fmt.Sprintf("rand%d", iter), Default: actions[rng.IntN(len(actions))], DefaultErrno: 13}
		nrs := rng.Perm(20)[:8]
		for i, nr := range nrs {
			name, _ := profiles.SyscallName(nr)
			r := profiles.Rule{Syscalls: []string{name}, Action: actions[rng.IntN(len(actions))], Errno: profiles.Errno(1 + i)}
			if i%2 == 0 {
				// Unconditional, and with it a few disjoint conditional
				// rules (eq on arg 0 with distinct values, plus one other
				// random condition each).
				p.Rules = append(p.Rules, r)
			}
			if rng.IntN(3) == 0 {
				// One rule with any comparison on any argument.
				ac := profiles.ArgCond{Index: rng.IntN(6), Op: ops[rng.IntN(len(ops))], Value: interesting[rng.IntN(len(interesting))]}
				if ac.Op == profiles.OpMaskedEq {
					ac.Mask = interesting[rng.IntN(len(interesting))]
					ac.Value &= ac.Mask
				}
				p.Rules = append(p.Rules, profiles.Rule{Syscalls: []string{name}, Action: actions[rng.IntN(len(actions))], Errno: 20, Args: []profiles.ArgCond{ac}})
				continue
			}
			// Or disjoint a0 == j rules. (Two-level rules next to
			// siblings hit TestLibseccompSharedBlockBug.)
			for j := range rng.IntN(3) {
				p.Rules = append(p.Rules, profiles.Rule{Syscalls: []string{name}, Action: actions[rng.IntN(len(actions))], Errno: profiles.Errno(20 + j),
					Args: []profiles.ArgCond{{Index: 0, Op: profiles.OpEq, Value: uint64(j)}}})
			}
		}
		for _, mode := range []profiles.Mode{profiles.ModeEnforce, profiles.ModeAudit} {
			own, err := filter.Compile(p, filter.Options{Arch: filter.ArchAMD64, Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			lib := &filter.Program{Insns: viaLibseccomp(t, p, mode)}
			for nr := range 22 {
				for _, a0 := range append([]uint64{2, 3}, interesting...) {
					for _, v := range interesting {
						for idx := 1; idx < 6; idx++ {
							d := filter.Data{Nr: int32(nr), Arch: auditArchX8664}
							d.Args[0], d.Args[idx] = a0, v
							r1, err1 := own.Run(d)
							r2, err2 := lib.Run(d)
							if err1 != nil || err2 != nil || r1 != r2 {
								var b strings.Builder
								own.WriteText(&b)
								b.WriteString("--- libseccomp:\n")
								lib.WriteText(&b)
								t.Fatalf("%s %s %+v: own %#x (%v), libseccomp %#x (%v)\nrules %+v\n%s", p.Name, mode, d, r1, err1, r2, err2, p.Rules, b.String())
							}
						}
					}
				}
			}
		}
	}
}

// viaLibseccomp turns p into disjoint FilterRules the way a libseccomp
// backend would have to: conditional rules as they are (the test makes
// them disjoint), and the unconditional action as explicit rules for the
// complement of the conditional ones, since libseccomp has no "else".
func viaLibseccomp(t *testing.T, p *profiles.Profile, mode profiles.Mode) []filter.Insn {
	t.Helper()
	ret := func(a profiles.Action, e profiles.Errno) uint32 {
		r, err := filter.Ret(a, e, mode)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	spec := FilterSpec{DefaultAction: ret(p.Default, p.DefaultErrno), BadArchAction: RetKillProcess}
	neg := map[profiles.Op]FilterOp{profiles.OpEq: OpNe, profiles.OpNe: OpEq, profiles.OpLt: OpGe, profiles.OpLe: OpGt, profiles.OpGt: OpLe, profiles.OpGe: OpLt}
	for _, sp := range p.Policies() {
		fall := ret(sp.Action, sp.Errno)
		if len(sp.Conds) == 0 {
			spec.Rules = append(spec.Rules, FilterRule{Nr: sp.Nr, Action: fall})
			continue
		}
		if c := sp.Conds[0].Args[0]; c.Index != 0 || c.Op != profiles.OpEq || len(sp.Conds) == 1 {
			// A single rule: the complement is its negation.
			spec.Rules = append(spec.Rules, condRule(sp.Nr, ret(sp.Conds[0].Action, sp.Conds[0].Errno), c))
			if c.Op == profiles.OpMaskedEq {
				// not(arg & m == v): one rule per mask bit that differs.
				for bit := uint64(1); bit != 0; bit <<= 1 {
					if c.Mask&bit != 0 {
						spec.Rules = append(spec.Rules, FilterRule{Nr: sp.Nr, Action: fall,
							Conds: []FilterCond{{Arg: uint(c.Index), Op: OpMaskedEq, A: bit, B: (c.Value & bit) ^ bit}}})
					}
				}
				continue
			}
			spec.Rules = append(spec.Rules, FilterRule{Nr: sp.Nr, Action: fall,
				Conds: []FilterCond{{Arg: uint(c.Index), Op: neg[c.Op], A: c.Value}}})
			continue
		}
		// a0 == 0, 1 (, 2) rules: the complement is a0 == the others or a0 > 2.
		covered := map[uint64]bool{}
		for _, r := range sp.Conds {
			spec.Rules = append(spec.Rules, condRule(sp.Nr, ret(r.Action, r.Errno), r.Args[0]))
			covered[r.Args[0].Value] = true
		}
		for v := range uint64(3) {
			if !covered[v] {
				spec.Rules = append(spec.Rules, FilterRule{Nr: sp.Nr, Action: fall, Conds: []FilterCond{{Arg: 0, Op: OpEq, A: v}}})
			}
		}
		spec.Rules = append(spec.Rules, FilterRule{Nr: sp.Nr, Action: fall, Conds: []FilterCond{{Arg: 0, Op: OpGt, A: 2}}})
	}
	prog, err := BuildFilter(spec)
	if err != nil {
		t.Fatalf("BuildFilter: %v", err)
	}
	insns := make([]filter.Insn, len(prog))
	for i, in := range prog {
		insns[i] = filter.Insn(in)
	}
	return insns
}

func condRule(nr int, action uint32, c profiles.ArgCond) FilterRule {
	ops := map[profiles.Op]FilterOp{profiles.OpEq: OpEq, profiles.OpNe: OpNe, profiles.OpLt: OpLt, profiles.OpLe: OpLe, profiles.OpGt: OpGt, profiles.OpGe: OpGe, profiles.OpMaskedEq: OpMaskedEq}
	fc := FilterCond{Arg: uint(c.Index), Op: ops[c.Op], A: c.Value}
	if c.Op == profiles.OpMaskedEq {
		fc.A, fc.B = c.Mask, c.Value
	}
	return FilterRule{Nr: nr, Action: action, Conds: []FilterCond{fc}}
}

// TestLibseccompSharedBlockBug records a miscompilation in libseccomp
// 2.5.4's binary-tree output (one reason filter emits its own BPF): the
// tail "a0 == 0 ? notify : allow" of rt_sigprocmask's block is shared with
// readv's, but readv reaches it after loading args[4], so readv(1, ...,
// a4=0) compares args[4] with 0 and is notified instead of allowed. If this
// test fails, the installed libseccomp no longer has the bug.
func TestLibseccompSharedBlockBug(t *testing.T) {
	prog := build(t, FilterSpec{DefaultAction: RetAllow, BadArchAction: RetKillProcess, Rules: []FilterRule{
		{Nr: 14, Action: RetLog, Conds: []FilterCond{{Arg: 0, Op: OpEq, A: 1}}},
		{Nr: 14, Action: RetUserNotif, Conds: []FilterCond{{Arg: 0, Op: OpEq, A: 0}}},
		{Nr: 19, Action: RetUserNotif, Conds: []FilterCond{{Arg: 0, Op: OpEq, A: 0}}},
		{Nr: 19, Action: RetUserNotif, Conds: []FilterCond{{Arg: 0, Op: OpEq, A: 1}, {Arg: 4, Op: OpEq, A: 1}}},
	}})
	expect(t, prog, call(19, 0), RetUserNotif)
	expect(t, prog, call(19, 1, 0, 0, 0, 1), RetUserNotif)
	expect(t, prog, call(19, 1, 0, 0, 0, 7), RetAllow)
	got, _ := run(prog, call(19, 1, 0, 0, 0, 0))
	if got == RetAllow {
		t.Fatalf("readv(1, a4=0) is allowed: libseccomp %s no longer shares the block wrongly; update this test and KERNEL-NOTES", "2.5.4")
	}
	t.Logf("libseccomp miscompiles readv(1, a4=0): %#x instead of ALLOW\n%s", got, dump(prog))
}
