// Package filter turns a profile into the classic BPF program the kernel
// runs for every system call of the sandboxed tree, and checks it.
//
// Compile emits the program itself rather than through libseccomp:
// libseccomp 2.5 refuses any rule whose action equals the filter's default
// ("requested action matches default action of filter"), which makes
// first-match rules such as "notify sendto unless its address is NULL"
// under a default-allow profile inexpressible, and merges conditional and
// unconditional rules of one syscall in ways that do not follow the
// profile's first-match semantics. The generator here is small, pure Go and
// deterministic (same profile, same bytes), uses the same layout libseccomp
// calls a binary tree (a binary search over syscall numbers, O(log n)
// comparisons), and is checked instruction by instruction: Run executes a
// program in a userspace cBPF VM, and the tests compare it with Eval, the
// direct evaluator of the profile's semantics, at every matcher's boundary
// values.
//
// Layout of every program:
//
//	ld arch;  arch != AUDIT_ARCH_X86_64           -> KILL_PROCESS (i386 int 0x80, foreign ABIs)
//	ld nr;    nr >= 0x40000000 (x32 syscall bit)  -> KILL_PROCESS
//	binary search over the syscall numbers that have a policy
//	  per syscall: its conditional rules in order (64-bit argument
//	  compares done as two 32-bit halves), then its unconditional action
//	otherwise: the profile default
//
// In audit mode every deny and kill becomes notify, so the supervisor can
// record what enforce mode would do and let the call run.
//
// filter imports profiles only; it makes no system calls and needs no cgo.
package filter
