//go:build libseccomp

// Opt-in: filter generates its own BPF (see filter/doc.go), so this file is
// a reference and a differential oracle, not part of the default build. To
// use it: go get github.com/seccomp/libseccomp-golang@v0.11.1, then
// go test -tags libseccomp ./internal/kernel.

package kernel

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// SECCOMP_RET_* values (linux/seccomp.h), as FilterSpec and FilterRule take
// them: the action in the high 16 bits, data (an errno) in the low 16.
const (
	RetKillProcess uint32 = 0x80000000
	RetKillThread  uint32 = 0x00000000
	RetTrap        uint32 = 0x00030000
	RetErrno       uint32 = 0x00050000
	RetUserNotif   uint32 = 0x7fc00000
	RetTrace       uint32 = 0x7ff00000
	RetLog         uint32 = 0x7ffc0000
	RetAllow       uint32 = 0x7fff0000

	retActionFull uint32 = 0xffff0000
	retData       uint32 = 0x0000ffff
)

// FilterOp compares one system call argument (all 64 bits of it).
type FilterOp int

const (
	OpEq       FilterOp = iota // arg == A
	OpNe                       // arg != A
	OpLt                       // arg <  A
	OpLe                       // arg <= A
	OpGt                       // arg >  A
	OpGe                       // arg >= A
	OpMaskedEq                 // arg & A == B (A is the mask, B the value; B must lie inside A)
)

// FilterCond is one comparison of argument Arg (0..5). B is used only by
// OpMaskedEq. A rule may test each argument at most once (libseccomp 2.5
// refuses a second test with EINVAL).
type FilterCond struct {
	Arg uint
	Op  FilterOp
	A   uint64
	B   uint64
}

// FilterRule gives system call Nr (the raw x86-64 number) the SECCOMP_RET_*
// value Action when every condition holds (AND; none: always).
type FilterRule struct {
	Nr     int
	Action uint32
	Conds  []FilterCond
}

// FilterSpec describes a whole program for x86-64.
//
// Rules are a set, not a list: libseccomp orders a syscall's rules its own
// way (by argument, then by comparison), so the rules of one syscall that
// can match the same call must have the same Action; the caller resolves
// any first-match semantics into disjoint rules first. A rule whose Action
// is DefaultAction is therefore redundant and dropped (libseccomp refuses
// it with EACCES). An unconditional rule cannot be combined with
// conditional rules of the same syscall (libseccomp would silently drop
// the conditional ones); BuildFilter refuses that.
type FilterSpec struct {
	DefaultAction uint32 // for syscalls no rule matches
	BadArchAction uint32 // for an arch other than AUDIT_ARCH_X86_64, and x32 numbers
	Rules         []FilterRule
}

// SockFilter is one classic BPF instruction (struct sock_filter).
type SockFilter struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}

// BuildFilter generates the program for spec with libseccomp, in its
// binary-tree layout. The result depends only on spec and the libseccomp
// version, not on the running kernel's features beyond the actions it
// accepts. The program does not set no_new_privs: the caller loads it.
func BuildFilter(spec FilterSpec) ([]SockFilter, error) {
	def, err := scmpAction(spec.DefaultAction)
	if err != nil {
		return nil, fmt.Errorf("build filter: default action: %w", err)
	}
	badArch, err := scmpAction(spec.BadArchAction)
	if err != nil {
		return nil, fmt.Errorf("build filter: bad-arch action: %w", err)
	}
	rules, err := checkRules(spec)
	if err != nil {
		return nil, fmt.Errorf("build filter: %w", err)
	}

	f, err := seccomp.NewFilter(def)
	if err != nil {
		return nil, fmt.Errorf("build filter: %w", err)
	}
	defer f.Release()

	// The context starts with the native arch only. Make it exactly
	// x86-64, so that the program is the same wherever it is generated
	// and every other AUDIT_ARCH (i386 via int 0x80) gets badArch.
	// With x86-64 alone and no x32 arch, libseccomp also sends syscall
	// numbers with the x32 bit (0x40000000) to badArch.
	if err := exactlyAMD64(f); err != nil {
		return nil, fmt.Errorf("build filter: %w", err)
	}
	if err := f.SetBadArchAction(badArch); err != nil {
		return nil, fmt.Errorf("build filter: bad-arch action: %w", err)
	}
	// Level 2: a binary search over syscall numbers instead of a linear
	// chain of comparisons (cheaper to install and to run, KERNEL-NOTES).
	if err := f.SetOptimize(2); err != nil {
		return nil, fmt.Errorf("build filter: binary tree: %w", err)
	}

	for _, r := range rules {
		act, err := scmpAction(r.Action)
		if err != nil {
			return nil, fmt.Errorf("build filter: syscall %d: %w", r.Nr, err)
		}
		// A raw number, not a name: syscalls newer than the installed
		// libseccomp (mseal, ...) are then still filtered. The Exact
		// variants refuse rather than rewrite a rule libseccomp would
		// otherwise translate (it translates nothing on x86-64 alone).
		call := seccomp.ScmpSyscall(r.Nr)
		if len(r.Conds) == 0 {
			err = f.AddRuleExact(call, act)
		} else {
			conds := make([]seccomp.ScmpCondition, len(r.Conds))
			for i, c := range r.Conds {
				if conds[i], err = scmpCond(c); err != nil {
					return nil, fmt.Errorf("build filter: syscall %d: %w", r.Nr, err)
				}
			}
			err = f.AddRuleConditionalExact(call, act, conds)
		}
		if err != nil {
			return nil, fmt.Errorf("build filter: syscall %d: %w", r.Nr, err)
		}
	}
	return export(f)
}

// checkRules drops rules that say what the default says and refuses the
// combinations libseccomp would resolve silently in its own way.
func checkRules(spec FilterSpec) ([]FilterRule, error) {
	uncond := map[int]uint32{}
	cond := map[int]bool{}
	var out []FilterRule
	for _, r := range spec.Rules {
		if r.Nr < 0 {
			return nil, fmt.Errorf("syscall %d: negative numbers are libseccomp pseudo-syscalls", r.Nr)
		}
		if len(r.Conds) == 0 {
			if a, ok := uncond[r.Nr]; ok {
				if a != r.Action {
					return nil, fmt.Errorf("syscall %d: two unconditional rules with actions %#x and %#x", r.Nr, a, r.Action)
				}
				continue // a duplicate
			}
			uncond[r.Nr] = r.Action
		} else {
			cond[r.Nr] = true
			var seen [6]bool
			for _, c := range r.Conds {
				if c.Arg < 6 && seen[c.Arg] {
					// libseccomp 2.5 builds one tree level per argument.
					return nil, fmt.Errorf("syscall %d: two conditions on argument %d in one rule (libseccomp takes one per argument; split the range into rules)", r.Nr, c.Arg)
				}
				if c.Arg < 6 {
					seen[c.Arg] = true
				}
			}
		}
		if r.Action == spec.DefaultAction {
			// Matches get the default anyway: rules do not overlap with
			// other actions (see FilterSpec), so nothing else could win.
			continue
		}
		out = append(out, r)
	}
	for nr := range uncond {
		if cond[nr] {
			return nil, fmt.Errorf("syscall %d: unconditional and conditional rules together (libseccomp keeps only the unconditional one)", nr)
		}
	}
	return out, nil
}

func exactlyAMD64(f *seccomp.ScmpFilter) error {
	native, err := seccomp.GetNativeArch()
	if err != nil {
		return err
	}
	if native != seccomp.ArchAMD64 {
		if err := f.AddArch(seccomp.ArchAMD64); err != nil {
			return fmt.Errorf("add arch x86_64: %w", err)
		}
		if err := f.RemoveArch(native); err != nil {
			return fmt.Errorf("remove native arch %v: %w", native, err)
		}
	}
	return nil
}

// scmpAction maps a SECCOMP_RET_* value to libseccomp's action token.
func scmpAction(ret uint32) (seccomp.ScmpAction, error) {
	data := ret & retData
	act := ret & retActionFull
	if data != 0 && act != RetErrno && act != RetTrace {
		return seccomp.ActInvalid, fmt.Errorf("action %#x: only ERRNO and TRACE carry data", ret)
	}
	switch act {
	case RetAllow:
		return seccomp.ActAllow, nil
	case RetErrno:
		return seccomp.ActErrno.SetReturnCode(int16(data)), nil
	case RetKillProcess:
		return seccomp.ActKillProcess, nil
	case RetKillThread:
		return seccomp.ActKillThread, nil
	case RetLog:
		return seccomp.ActLog, nil
	case RetUserNotif:
		return seccomp.ActNotify, nil
	case RetTrap:
		return seccomp.ActTrap, nil
	case RetTrace:
		return seccomp.ActTrace.SetReturnCode(int16(data)), nil
	}
	return seccomp.ActInvalid, fmt.Errorf("unknown seccomp action %#x", ret)
}

func scmpCond(c FilterCond) (seccomp.ScmpCondition, error) {
	if c.Arg > 5 {
		return seccomp.ScmpCondition{}, fmt.Errorf("argument %d out of range (0..5)", c.Arg)
	}
	ops := [...]seccomp.ScmpCompareOp{
		OpEq: seccomp.CompareEqual, OpNe: seccomp.CompareNotEqual,
		OpLt: seccomp.CompareLess, OpLe: seccomp.CompareLessOrEqual,
		OpGt: seccomp.CompareGreater, OpGe: seccomp.CompareGreaterEqual,
		OpMaskedEq: seccomp.CompareMaskedEqual,
	}
	if c.Op < 0 || int(c.Op) >= len(ops) {
		return seccomp.ScmpCondition{}, fmt.Errorf("unknown comparison %d", c.Op)
	}
	if c.Op == OpMaskedEq {
		// libseccomp compares arg & mask with value & mask; a value bit
		// outside the mask would make our "arg & A == B" never true but
		// libseccomp's test true for some args. Refuse instead of widening.
		if c.B&^c.A != 0 {
			return seccomp.ScmpCondition{}, fmt.Errorf("masked_eq value %#x has bits outside mask %#x", c.B, c.A)
		}
		return seccomp.MakeCondition(c.Arg, ops[c.Op], c.A, c.B)
	}
	return seccomp.MakeCondition(c.Arg, ops[c.Op], c.A)
}

// export writes the program to a memfd and reads it back: libseccomp 2.5.4
// has no seccomp_export_bpf_mem (ExportBPFMem returns a version error), and
// a memfd needs no file system and no cleanup.
func export(f *seccomp.ScmpFilter) ([]SockFilter, error) {
	fd, err := unix.MemfdCreate("archangel-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("export filter: memfd_create: %w", err)
	}
	file := os.NewFile(uintptr(fd), "archangel-bpf")
	defer file.Close()
	if err := f.ExportBPF(file); err != nil {
		return nil, fmt.Errorf("export filter: %w", err)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("export filter: %w", err)
	}
	raw, err := io.ReadAll(file)
	if err != nil {
		return nil, fmt.Errorf("export filter: %w", err)
	}
	return decodeSockFilters(raw)
}

// decodeSockFilters parses an array of struct sock_filter in host byte
// order, which is how libseccomp writes it (little endian here).
func decodeSockFilters(raw []byte) ([]SockFilter, error) {
	if len(raw) == 0 || len(raw)%8 != 0 {
		return nil, fmt.Errorf("export filter: %d bytes is not a sock_filter array", len(raw))
	}
	out := make([]SockFilter, 0, len(raw)/8)
	for b := range slices.Chunk(raw, 8) {
		out = append(out, SockFilter{
			Code: binary.NativeEndian.Uint16(b[0:]),
			Jt:   b[2],
			Jf:   b[3],
			K:    binary.NativeEndian.Uint32(b[4:]),
		})
	}
	return out, nil
}
