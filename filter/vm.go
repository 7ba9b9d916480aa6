package filter

import (
	"encoding/binary"
	"fmt"
)

// Run executes the program on d in a userspace classic-BPF interpreter
// with the kernel's seccomp rules (loads only from seccomp_data, aligned
// 32-bit words; forward jumps only) and returns the SECCOMP_RET_* value.
func (p *Program) Run(d Data) (uint32, error) {
	return run(p.Insns, d)
}

func run(prog []Insn, d Data) (uint32, error) {
	var buf [64]byte
	binary.LittleEndian.PutUint32(buf[0:], uint32(d.Nr))
	binary.LittleEndian.PutUint32(buf[4:], d.Arch)
	binary.LittleEndian.PutUint64(buf[8:], d.IP)
	for i, a := range d.Args {
		binary.LittleEndian.PutUint64(buf[16+8*i:], a)
	}
	var a, x uint32
	var mem [16]uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case bpfLD | bpfW | bpfABS:
			if in.K%4 != 0 || in.K+4 > 64 {
				return 0, fmt.Errorf("pc %d: load at %d outside seccomp_data", pc, in.K)
			}
			a = binary.LittleEndian.Uint32(buf[in.K:])
		case bpfLD | 0x80 /*BPF_LEN*/ | bpfW:
			a = 64
		case 0x01 | 0x80 | bpfW: // LDX LEN
			x = 64
		case bpfLD | 0x60 /*BPF_MEM*/ | bpfW:
			a = mem[in.K&15]
		case 0x01 | 0x60: // LDX MEM
			x = mem[in.K&15]
		case 0x02: // ST
			mem[in.K&15] = a
		case 0x03: // STX
			mem[in.K&15] = x
		case bpfALU | bpfAND | bpfK:
			a &= in.K
		case bpfALU | 0x40 /*OR*/ | bpfK:
			a |= in.K
		case bpfALU | 0x00 /*ADD*/ | bpfK:
			a += in.K
		case bpfALU | 0x10 /*SUB*/ | bpfK:
			a -= in.K
		case bpfALU | 0x60 /*LSH*/ | bpfK:
			a <<= in.K
		case bpfALU | 0x70 /*RSH*/ | bpfK:
			a >>= in.K
		case 0x07 | 0x00: // TAX
			x = a
		case 0x07 | 0x80: // TXA
			a = x
		case bpfJMP | bpfJA:
			pc += int(in.K)
		case bpfJMP | bpfJEQ | bpfK, bpfJMP | bpfJGT | bpfK, bpfJMP | bpfJGE | bpfK, bpfJMP | bpfJSET | bpfK:
			var cond bool
			switch in.Code &^ (bpfJMP | bpfK) {
			case bpfJEQ:
				cond = a == in.K
			case bpfJGT:
				cond = a > in.K
			case bpfJGE:
				cond = a >= in.K
			case bpfJSET:
				cond = a&in.K != 0
			}
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfRET | bpfK:
			return in.K, nil
		case bpfRET | 0x10: // RET A
			return a, nil
		default:
			return 0, fmt.Errorf("pc %d: opcode %#x not supported", pc, in.Code)
		}
	}
	return 0, fmt.Errorf("program fell off its end")
}
