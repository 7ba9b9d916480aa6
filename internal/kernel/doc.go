// Package kernel is archangel's only door to the kernel's seccomp, pidfd and
// process-memory interfaces, and the only package that uses cgo
// (the launcher shim; libseccomp-golang only in the libseccomp-tagged test
// oracle).
//
// Each file wraps one kernel interface and stays small enough to audit:
//
//	shim.go           the launcher shim: no_new_privs, seccomp(2) with
//	                  NEW_LISTENER, listener hand-off over SCM_RIGHTS, execve
//	notify_unsafe.go  seccomp_unotify(2): RECV, SEND, ID_VALID, SET_FLAGS,
//	                  structure sizes checked against SECCOMP_GET_NOTIF_SIZES
//	mem.go            reads of target memory (process_vm_readv(2))
//	fd.go             the FD type: an owned descriptor with idempotent Close
//	features.go       probes for optional kernel features
//	libseccomp.go     (build tag libseccomp) the same rules through libseccomp,
//	                  kept as a test oracle for filter; see its tests
//
// The package imports no other archangel package; its API speaks plain Go
// types so that libseccomp's never leak.
//
// Kernel contract (see seccomp_unotify(2) and ../shared/KERNEL-NOTES.md):
// SECCOMP_IOCTL_NOTIF_RECV blocks even on a non-blocking fd and keeps
// blocking after the last target exits, so callers poll for readability
// first and treat POLLHUP as "no targets left"; RECV and SEND may fail with
// EINTR (retry) or ENOENT (the target died or its call was interrupted).
package kernel
