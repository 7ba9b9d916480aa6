package filter

import (
	"bufio"
	"fmt"
	"io"

	"github.com/archangel-sandbox/archangel/profiles"
)

// WriteText writes a readable disassembly: one instruction per line with
// absolute jump targets, syscall names and return actions in comments.
func (p *Program) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "; profile %s, %s, %s mode, %d instructions, sha256 %s\n", p.Profile, p.Arch, p.Mode, len(p.Insns), p.Hash)
	lastLoad := uint32(1 << 31)
	for pc, in := range p.Insns {
		fmt.Fprintf(bw, "%04d: %s\n", pc, disasm(pc, in, lastLoad))
		if in.Code == bpfLD|bpfW|bpfABS {
			lastLoad = in.K
		}
	}
	return bw.Flush()
}

func disasm(pc int, in Insn, lastLoad uint32) string {
	jmp := func(op string) string {
		s := fmt.Sprintf("%-5s #%#x, %04d, %04d", op, in.K, pc+1+int(in.Jt), pc+1+int(in.Jf))
		if lastLoad == offNr && in.K < x32SyscallBit {
			if name, ok := profiles.SyscallName(int(in.K)); ok {
				s += "  ; " + name
			}
		}
		if lastLoad == offArch && in.K == AuditArchX8664 {
			s += "  ; x86_64"
		}
		return s
	}
	switch in.Code {
	case bpfLD | bpfW | bpfABS:
		return fmt.Sprintf("ld    [%d]  ; %s", in.K, fieldName(in.K))
	case bpfALU | bpfAND | bpfK:
		return fmt.Sprintf("and   #%#x", in.K)
	case bpfJMP | bpfJA:
		return fmt.Sprintf("ja    %04d", pc+1+int(in.K))
	case bpfJMP | bpfJEQ | bpfK:
		return jmp("jeq")
	case bpfJMP | bpfJGT | bpfK:
		return jmp("jgt")
	case bpfJMP | bpfJGE | bpfK:
		return jmp("jge")
	case bpfJMP | bpfJSET | bpfK:
		return jmp("jset")
	case bpfRET | bpfK:
		a, e := Decode(in.K)
		s := fmt.Sprintf("ret   #%#x  ; %s", in.K, a)
		if a == profiles.ActionErrno {
			s += " " + e.String()
		}
		return s
	}
	return fmt.Sprintf(".insn code=%#x jt=%d jf=%d k=%#x", in.Code, in.Jt, in.Jf, in.K)
}

func fieldName(off uint32) string {
	switch {
	case off == offNr:
		return "nr"
	case off == offArch:
		return "arch"
	case off == 8 || off == 12:
		return "instruction_pointer"
	case off >= offArgs && off < 64:
		half := "lo"
		if (off-offArgs)%8 == 4 {
			half = "hi"
		}
		return fmt.Sprintf("args[%d].%s", (off-offArgs)/8, half)
	}
	return "?"
}
