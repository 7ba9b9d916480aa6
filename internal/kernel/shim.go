package kernel

/*
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

// Stages reported back to Go when the shim returns; after the filter is
// loaded it never returns.
enum { SHIM_NNP = 1, SHIM_SIGMASK = 2, SHIM_LOAD = 3, SHIM_LANDLOCK = 4 };

#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif

// Messages sent to the supervisor on the socket after loading.
#define SHIM_MSG_LISTENER 'L'
#define SHIM_MSG_LISTENER_NR 'N'
#define SHIM_MSG_EXECFAIL 'X'

// archangel_shim is everything the launcher does from the moment the filter
// exists until the target's execve. It is C, not Go, so that the list of
// system calls made under the new filter is short, fixed and auditable:
// write, read, rt_sigprocmask, execve and, on failure, exit_group
// (profiles.LauncherSyscalls). With scm set the listener travels by
// SCM_RIGHTS and sendmsg joins the list; otherwise only its number is
// written and the supervisor takes it with pidfd_getfd(2), which keeps
// sendmsg — an alias of connect — out of what every profile must allow. Signals are blocked for the whole
// window so that no handler (the Go runtime's SIGURG preemption among them)
// runs under the filter. The program is installed on this thread only: after
// execve only this thread exists, so TSYNC would add nothing but subject the
// Go runtime's other threads to the profile while it still runs.
//
// Returns -stage*1000 - errno on a failure before the filter is loaded.
static int archangel_shim(const unsigned char *prog, unsigned short len,
                          unsigned int flags, int scm, int landlock, int sock, const char *path,
                          char *const argv[], char *const envp[]) {
	sigset_t all, old;
	struct sock_fprog fprog = { .len = len, .filter = (struct sock_filter *)prog };
	int listener;
	char ok;

	if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -(SHIM_NNP * 1000 + errno);
	// The Landlock ruleset (built in Go) binds this thread, and the target
	// after execve, before the seccomp filter exists.
	if (landlock >= 0 && syscall(SYS_landlock_restrict_self, landlock, 0) != 0)
		return -(SHIM_LANDLOCK * 1000 + errno);
	sigfillset(&all);
	if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8) != 0)
		return -(SHIM_SIGMASK * 1000 + errno);

	listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
	if (listener < 0 && errno == EINVAL && (flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)) {
		// Before Linux 5.19. The Go side records the downgrade.
		listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
		                   flags & ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &fprog);
	}
	if (listener < 0) {
		int e = errno;
		syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
		return -(SHIM_LOAD * 1000 + e);
	}

	// From here on every system call passes through the new filter.
	if (!scm) {
		unsigned char m[5] = { SHIM_MSG_LISTENER_NR, listener & 0xff, (listener >> 8) & 0xff,
		                       (listener >> 16) & 0xff, (listener >> 24) & 0xff };
		if (syscall(SYS_write, sock, m, sizeof(m)) != sizeof(m))
			syscall(SYS_exit_group, 125);
	} else {
		char tag = SHIM_MSG_LISTENER;
		struct iovec iov = { .iov_base = &tag, .iov_len = 1 };
		union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
		                      .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		memset(u.buf, 0, sizeof(u.buf));
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &listener, sizeof(int));
		if (syscall(SYS_sendmsg, sock, &msg, 0) != 1)
			syscall(SYS_exit_group, 125);
	}
	// The listener was created close-on-exec; the supervisor holds its copy.
	// Wait for the go-ahead: the supervisor is now answering notifications.
	if (syscall(SYS_read, sock, &ok, 1) != 1)
		syscall(SYS_exit_group, 125); // supervisor gone: never run the target
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
	syscall(SYS_execve, path, argv, envp);
	{
		int e = errno;
		unsigned char m[5] = { SHIM_MSG_EXECFAIL, e & 0xff, (e >> 8) & 0xff, (e >> 16) & 0xff, (e >> 24) & 0xff };
		syscall(SYS_write, sock, m, sizeof(m));
		syscall(SYS_exit_group, (e == ENOENT || e == ENOTDIR) ? 127 : 126);
	}
	return 0; // not reached
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Messages the shim sends on its socket after loading the filter.
const (
	ShimMsgListener   = 'L' // one byte, with the listener fd in SCM_RIGHTS
	ShimMsgListenerNr = 'N' // one byte, then the listener's fd number in the shim (4 bytes LE)
	ShimMsgExecFail   = 'X' // one byte, then the execve errno (4 bytes, little endian)
)

// Seccomp filter flags archangel asks for.
const (
	FlagNewListener       = unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	FlagWaitKillableRecv  = unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
	FlagTSync             = unix.SECCOMP_FILTER_FLAG_TSYNC
	FlagTSyncESRCH        = unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
	maxProgramInstruction = 4096 // BPF_MAXINSNS
)

// ShimSpec is what the launcher shim needs: the program (struct sock_filter
// array), the filter flags, the socket to the supervisor and the target.
type ShimSpec struct {
	Program []byte
	Flags   uint32
	SCM     bool // hand the listener over with SCM_RIGHTS instead of pidfd_getfd
	// Landlock is a ruleset fd (LandlockRuleset) to restrict the target
	// with, or -1.
	Landlock int
	Sock     int
	Path     string
	Argv     []string
	Env      []string
}

// ExecFiltered sets no_new_privs, loads spec.Program with seccomp(2) on the
// calling thread, hands the listener to the supervisor over spec.Sock,
// waits for the go-ahead byte and execs the target. It returns only when
// something fails before the filter is loaded; after that, failures end the
// process (exit 125 for a lost supervisor, 126/127 for a failed execve,
// reported on the socket first).
func ExecFiltered(spec ShimSpec) error {
	if len(spec.Program) == 0 || len(spec.Program)%8 != 0 || len(spec.Program)/8 > maxProgramInstruction {
		return fmt.Errorf("load filter: program of %d bytes is not 1..%d instructions", len(spec.Program), maxProgramInstruction)
	}
	// Everything is allocated before the filter is loaded: no Go code runs
	// between seccomp(2) and execve.
	path := C.CString(spec.Path)
	argv := cStrings(spec.Argv)
	envp := cStrings(spec.Env)
	prog := C.CBytes(spec.Program)

	scm := 0
	if spec.SCM {
		scm = 1
	}
	runtime.LockOSThread() // the filter attaches to this thread; exec replaces it
	rc := C.archangel_shim((*C.uchar)(prog), C.ushort(len(spec.Program)/8), C.uint(spec.Flags), C.int(scm), C.int(spec.Landlock),
		C.int(spec.Sock), path, (**C.char)(unsafe.Pointer(&argv[0])), (**C.char)(unsafe.Pointer(&envp[0])))
	runtime.UnlockOSThread()
	stage, errno := int(-rc)/1000, syscall.Errno(int(-rc)%1000)
	switch stage {
	case 1:
		return fmt.Errorf("set no_new_privs: %w", errno)
	case 2:
		return fmt.Errorf("block signals: %w", errno)
	case 4:
		return fmt.Errorf("apply Landlock ruleset: %w", errno)
	case 3:
		if errors.Is(errno, unix.EINVAL) || errors.Is(errno, unix.ENOSYS) {
			return &FeatureError{Feature: "seccomp user notification (SECCOMP_FILTER_FLAG_NEW_LISTENER)", MinKernel: "5.0", Err: errno}
		}
		return fmt.Errorf("load filter: %w", errno)
	}
	return fmt.Errorf("launcher shim returned %d", int(rc))
}

// cStrings returns a NULL-terminated C array of C strings (never freed: the
// process execs or exits right after).
func cStrings(ss []string) []*C.char {
	out := make([]*C.char, 0, len(ss)+1)
	for _, s := range ss {
		out = append(out, C.CString(s))
	}
	return append(out, nil)
}
