// Package supervisor launches a command under a compiled seccomp program
// and answers the system calls the program hands to user space
// (SECCOMP_RET_USER_NOTIF).
//
// Launch (see Cmd.Start): archangel re-executes itself as a small shim with
// one end of a SOCK_SEQPACKET socketpair as fd 3. The parent sends the
// program; the shim sets no_new_privs, loads it with
// SECCOMP_FILTER_FLAG_NEW_LISTENER (+ WAIT_KILLABLE_RECV), sends the
// listener back with SCM_RIGHTS, waits for the go-ahead and execs the
// target. The shim's own execve is the first notification the supervisor
// can see. The parent becomes a child subreaper, so every descendant that
// outlives its parent is reaped here and killed when the target ends.
//
// Notifications are received and answered on one locked OS thread with
// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP set: a goroutine hand-off per
// notification costs 6x the round trip (../shared/KERNEL-NOTES.md).
//
// Fail closed: a notification the supervisor cannot decide is answered
// with EPERM in enforce mode, never CONTINUE; if the supervisor dies, the
// listener closes, every notified call fails with ENOSYS and the target
// (PR_SET_PDEATHSIG) is killed.
//
// This package must not be imported by profiles, filter or analyzer.
package supervisor
