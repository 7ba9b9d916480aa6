package tap

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Record layout in the ring buffer, little endian (the host's order):
//
//	0  u64 ktime (CLOCK_MONOTONIC ns)
//	8  u32 tid
//	12 u32 tgid
//	16 u32 kind
//	20 s32 syscall number | child tid (fork) | old tid (exec)
//	24 s64 return value (sys_exit), else 0
//	32 char filename[pathMax] (exec only, NUL-terminated)
const (
	recSize  = 32
	pathMax  = 256
	execSize = recSize + pathMax
)

// The programs are raw tracepoint programs: their context is the
// tracepoint's arguments as an array of u64 (TP_PROTO in
// include/trace/events/*.h), read directly; what they point to is read
// with bpf_probe_read_kernel. Raw tracepoints cost the traced task less
// than classic ones (no perf record is built), need no tracefs, and detach
// without the RCU grace period a classic tracepoint's perf event waits
// for at close (~60 ms each here).
//
//	sys_exit(struct pt_regs *regs, long ret)
//	sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
//	sched_process_fork(struct task_struct *parent, struct task_struct *child)
//	sched_process_exit(struct task_struct *p, ...)
const (
	argRegs   = 0 // sys_exit
	argRet    = 8
	argOldPID = 8 // sched_process_exec
	argBprm   = 16
	argChild  = 8 // sched_process_fork
)

// offsets are the kernel structure offsets the programs need, read from
// the kernel's BTF at Open (they change between kernel builds).
type offsets struct {
	origAX       int16 // struct pt_regs: the syscall number (x86-64 uapi layout)
	bprmFilename int16 // struct linux_binprm: const char *filename
	taskPID      int16 // struct task_struct: pid_t pid (the thread's id)
}

// program assembles the program for one tracepoint. Every program starts
// with the cgroup test, reserves a record (counting a failure in lost),
// fills the common header and then calls body with R6 = ctx, R7 = record.
func program(kind Kind, off offsets, cgroupID uint64, level int, wakeBytes int32, ring, lost *ebpf.Map) asm.Instructions {
	size := int32(recSize)
	if kind == KindExec {
		size = execSize
	}
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		// Only tasks in the sandbox cgroup or below it.
		asm.Mov.Imm(asm.R1, int32(level)),
		asm.FnGetCurrentAncestorCgroupId.Call(),
		asm.LoadImm(asm.R1, int64(cgroupID), asm.DWord),
		asm.JNE.Reg(asm.R0, asm.R1, "out"),

		asm.LoadMapPtr(asm.R1, ring.FD()),
		asm.Mov.Imm(asm.R2, size),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "lost"),
		asm.Mov.Reg(asm.R7, asm.R0),

		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.R7, 0, asm.R0, asm.DWord),
		asm.FnGetCurrentPidTgid.Call(),
		asm.StoreMem(asm.R7, 8, asm.R0, asm.Word), // low half: the thread's id
		asm.RSh.Imm(asm.R0, 32),
		asm.StoreMem(asm.R7, 12, asm.R0, asm.Word),
		asm.StoreImm(asm.R7, 16, int64(kind), asm.Word),
	}
	// probe reads a u64 at *(R3 + off) into the stack slot fp-16 and
	// leaves it in R1 (0 when the read fails).
	probe := func(off int16) asm.Instructions {
		return asm.Instructions{
			asm.Add.Imm(asm.R3, int32(off)),
			asm.StoreImm(asm.R10, -16, 0, asm.Word),
			asm.StoreImm(asm.R10, -12, 0, asm.Word),
			asm.Mov.Reg(asm.R1, asm.R10),
			asm.Add.Imm(asm.R1, -16),
			asm.Mov.Imm(asm.R2, 8),
			asm.FnProbeReadKernel.Call(),
			asm.LoadMem(asm.R1, asm.R10, -16, asm.DWord),
		}
	}
	switch kind {
	case KindSyscall:
		insns = append(insns, asm.LoadMem(asm.R3, asm.R6, argRegs, asm.DWord))
		insns = append(insns, probe(off.origAX)...)
		insns = append(insns,
			asm.StoreMem(asm.R7, 20, asm.R1, asm.Word),
			asm.LoadMem(asm.R1, asm.R6, argRet, asm.DWord),
			asm.StoreMem(asm.R7, 24, asm.R1, asm.DWord),
		)
	case KindFork:
		insns = append(insns, asm.LoadMem(asm.R3, asm.R6, argChild, asm.DWord))
		insns = append(insns, probe(off.taskPID)...)
		insns = append(insns,
			asm.StoreMem(asm.R7, 20, asm.R1, asm.Word), // pid_t: the low half
			asm.Mov.Imm(asm.R1, 0),
			asm.StoreMem(asm.R7, 24, asm.R1, asm.DWord),
		)
	case KindExit:
		insns = append(insns,
			asm.Mov.Imm(asm.R1, 0),
			asm.StoreMem(asm.R7, 20, asm.R1, asm.Word),
			asm.StoreMem(asm.R7, 24, asm.R1, asm.DWord),
		)
	case KindExec:
		insns = append(insns,
			asm.LoadMem(asm.R1, asm.R6, argOldPID, asm.DWord),
			asm.StoreMem(asm.R7, 20, asm.R1, asm.Word),
			asm.Mov.Imm(asm.R1, 0),
			asm.StoreMem(asm.R7, 24, asm.R1, asm.DWord),
			asm.StoreMem(asm.R7, recSize, asm.R1, asm.Byte), // an empty path if the reads fail
			asm.LoadMem(asm.R3, asm.R6, argBprm, asm.DWord),
		)
		insns = append(insns, probe(off.bprmFilename)...)
		insns = append(insns,
			asm.Mov.Reg(asm.R3, asm.R1),
			asm.Mov.Reg(asm.R1, asm.R7),
			asm.Add.Imm(asm.R1, recSize),
			asm.Mov.Imm(asm.R2, pathMax),
			asm.FnProbeReadKernelStr.Call(),
		)
	}
	// Wake the reader only once the ring is an eighth full: a wake-up per
	// record (the default) costs the traced task an irq_work each time.
	// The reader also polls every PollInterval, so records never wait
	// longer than that.
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, ring.FD()),
		asm.Mov.Imm(asm.R2, 0), // BPF_RB_AVAIL_DATA
		asm.FnRingbufQuery.Call(),
		asm.Mov.Imm(asm.R2, 1), // BPF_RB_NO_WAKEUP
		asm.JLT.Imm(asm.R0, wakeBytes, "submit"),
		asm.Mov.Imm(asm.R2, 2), // BPF_RB_FORCE_WAKEUP
		asm.Mov.Reg(asm.R1, asm.R7).WithSymbol("submit"),
		asm.FnRingbufSubmit.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),

		// The ring buffer is full: count the record we could not write.
		asm.StoreImm(asm.R10, -4, 0, asm.Word).WithSymbol("lost"),
		asm.LoadMapPtr(asm.R1, lost.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Ja.Label("out"),
	)
	return insns
}
