package kernel

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SeccompData mirrors struct seccomp_data.
type SeccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

// Notif mirrors struct seccomp_notif: one notified system call.
type Notif struct {
	ID    uint64
	PID   uint32 // thread ID in the supervisor's PID namespace
	Flags uint32
	Data  SeccompData
}

// NotifResp mirrors struct seccomp_notif_resp.
type NotifResp struct {
	ID    uint64
	Val   int64
	Error int32 // negative errno, or 0
	Flags uint32
}

// notifAddFD mirrors struct seccomp_notif_addfd.
type notifAddFD struct {
	ID         uint64
	Flags      uint32
	SrcFD      uint32
	NewFD      uint32
	NewFDFlags uint32
}

// RespFlagContinue asks the kernel to run the call as if no filter had
// returned USER_NOTIF. The kernel re-reads pointer arguments afterwards, so
// it is safe only for verdicts that depended on scalar arguments alone.
const RespFlagContinue = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE

type notifSizes struct {
	Notif     uint16
	NotifResp uint16
	Data      uint16
}

var sizesOnce = sync.OnceValue(func() error {
	var s notifSizes
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_NOTIF_SIZES, 0, uintptr(unsafe.Pointer(&s)))
	if e != 0 {
		return &FeatureError{Feature: "SECCOMP_GET_NOTIF_SIZES", MinKernel: "5.0", Err: e}
	}
	// The kernel may grow the structures; it never shrinks them. Larger
	// kernel structures would be truncated by our RECV buffer.
	if int(s.Notif) != int(unsafe.Sizeof(Notif{})) || int(s.NotifResp) != int(unsafe.Sizeof(NotifResp{})) ||
		int(s.Data) != int(unsafe.Sizeof(SeccompData{})) {
		return fmt.Errorf("seccomp notification structures: kernel sizes notif=%d resp=%d data=%d, archangel built for %d/%d/%d",
			s.Notif, s.NotifResp, s.Data, unsafe.Sizeof(Notif{}), unsafe.Sizeof(NotifResp{}), unsafe.Sizeof(SeccompData{}))
	}
	return nil
})

// CheckNotifSizes verifies that the kernel's notification structures have
// the sizes this build declares (seccomp_unotify(2) asks callers to check).
func CheckNotifSizes() error { return sizesOnce() }

// ErrNotifGone reports that the notification no longer exists: the target
// died or its call was interrupted by a signal (ENOENT).
var ErrNotifGone = errors.New("notification no longer valid")

func ioctl(fd int, req uint, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		case unix.ENOENT:
			return ErrNotifGone
		}
		return e
	}
}

// NotifRecv receives one notification into n. Call it only after poll
// reported the listener readable: RECV blocks even on a non-blocking fd.
func NotifRecv(listener int, n *Notif) error {
	*n = Notif{} // the kernel requires a zeroed buffer
	return ioctl(listener, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(n))
}

// NotifRecvInterruptible receives one notification and returns
// unix.EINTR when a signal interrupts the wait (it is not retried here):
// the receive loop stops that way. It is an ordinary (not raw) system
// call: a goroutine blocked in a raw one cannot be stopped by the Go
// runtime, and on Linux 6.18 the wait restarts after the preemption
// signal, so a garbage collection that starts before the first
// notification would wait for it forever.
func NotifRecvInterruptible(listener int, n *Notif) error {
	*n = Notif{}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), uintptr(unix.SECCOMP_IOCTL_NOTIF_RECV), uintptr(unsafe.Pointer(n)))
	switch e {
	case 0:
		return nil
	case unix.ENOENT:
		return ErrNotifGone
	}
	return e
}

// NotifSendRaw answers a notification with a raw system call: it never
// blocks for long, and skipping the scheduler's bookkeeping keeps it off
// the round trip's tail. EINTR is retried.
func NotifSendRaw(listener int, r *NotifResp) error {
	for {
		_, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(listener), uintptr(unix.SECCOMP_IOCTL_NOTIF_SEND), uintptr(unsafe.Pointer(r)))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		case unix.ENOENT:
			return ErrNotifGone
		}
		return e
	}
}

// NotifSend answers a notification.
func NotifSend(listener int, r *NotifResp) error {
	return ioctl(listener, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(r))
}

// NotifIDValid reports whether notification id is still pending. Every read
// of target memory must be followed by it: the thread may have died and its
// PID been reused between RECV and the read, in which case we read a
// stranger's memory (seccomp_unotify(2), "NOTES").
func NotifIDValid(listener int, id uint64) error {
	return ioctl(listener, uint(unix.SECCOMP_IOCTL_NOTIF_ID_VALID), unsafe.Pointer(&id))
}

// SetSyncWakeUp asks the kernel to wake the supervisor and the target on
// the same CPU (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, Linux 6.6): without it
// the round trip on a VM is bimodal, 4.5 µs or ~45 µs.
func SetSyncWakeUp(listener int) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), uintptr(unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS),
		uintptr(unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP))
	if e != 0 {
		if e == unix.EINVAL || e == unix.ENOTTY {
			return &FeatureError{Feature: "SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP", MinKernel: "6.6", Err: e}
		}
		return e
	}
	return nil
}

// NotifAddFD installs srcFD in the target of notification id. With send
// set, the installed descriptor number also answers the notification
// atomically (SECCOMP_ADDFD_FLAG_SEND, Linux 5.14). It returns the number
// the descriptor got in the target.
func NotifAddFD(listener int, id uint64, srcFD int, cloexec, send bool) (int, error) {
	a := notifAddFD{ID: id, SrcFD: uint32(srcFD)}
	if cloexec {
		a.NewFDFlags = unix.O_CLOEXEC
	}
	if send {
		a.Flags |= unix.SECCOMP_ADDFD_FLAG_SEND
	}
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), uintptr(unix.SECCOMP_IOCTL_NOTIF_ADDFD), uintptr(unsafe.Pointer(&a)))
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		case unix.ENOENT:
			return -1, ErrNotifGone
		case unix.EINVAL, unix.ENOTTY:
			return -1, &FeatureError{Feature: "SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SEND", MinKernel: "5.14", Err: e}
		}
		return -1, e
	}
}
