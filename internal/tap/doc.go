// Package tap streams the system calls of one cgroup's tasks to user space:
// the whole stream the sequence model needs (analyzer.SeqModel), which the
// seccomp notifications, filtered to the calls a profile leaves undecided,
// do not give.
//
// Four BPF programs, assembled at Open with cilium/ebpf's asm package (no C
// compiler, no object files), attach to raw tracepoints:
//
//	sys_exit             one record per system call that returned
//	sched_process_exec   a task replaced its image (a new stream; the path)
//	sched_process_fork   a task created a thread or a process (its tid)
//	sched_process_exit   a thread ended
//
// Each program first compares bpf_get_current_ancestor_cgroup_id(level)
// with the sandbox cgroup's id (the inode number of its directory in the
// cgroup v2 hierarchy), both baked into the instructions, so a task outside
// the cgroup costs the tracepoint call and a few instructions and writes
// nothing. Records go to one BPF ring buffer; reservation in it is
// serialised, so the records of one thread arrive in the order the thread
// made its calls. A record the ring buffer has no room for is counted
// (Lost), never silently dropped. The programs wake the reader only when
// the ring is an eighth full; the reader also polls (Options.PollInterval).
//
// Raw tracepoints, not the classic raw_syscalls/sys_exit event: a raw
// tracepoint costs the traced task less (no perf record is built), needs
// no tracefs, and detaches at once, where closing a classic tracepoint's
// perf event waits for an RCU grace period (50-90 ms each, measured here:
// a quarter of a second added to the end of every run). The price is that
// the programs read kernel structures: the syscall number from
// pt_regs.orig_ax, the exec'd path from linux_binprm.filename, a new
// task's id from task_struct.pid, at offsets read from the kernel's BTF.
//
// Why sys_exit and not sys_enter: sys_enter fires after seccomp has run, so
// a call the filter refuses (SECCOMP_RET_ERRNO) or the supervisor answers
// itself (an open carried out with SECCOMP_IOCTL_NOTIF_ADDFD, a deny) never
// reaches it, and the same program would give a different stream in
// enforce mode than in learn or audit mode. sys_exit fires for those calls
// too (syscall_exit_work in kernel/entry), with the number the task asked
// for; it misses only exit and exit_group, which do not return, and calls
// killed by the filter. The tap's test checks this on the running kernel.
//
// Kernel contract: BPF programs and ring buffers need CAP_BPF and
// CAP_PERFMON (root in practice), Linux >= 5.8 (ring buffer,
// bpf_get_current_ancestor_cgroup_id) and kernel BTF
// (/sys/kernel/btf/vmlinux); x86-64 only. Without any of them Open returns
// an error wrapping ErrUnavailable that says why; it never returns a tap
// that sees nothing. pids are those of the initial pid namespace
// (bpf_get_current_pid_tgid).
//
// The package imports no archangel package.
package tap
