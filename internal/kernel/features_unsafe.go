package kernel

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// ActionAvailable reports whether the kernel knows the seccomp return
// action ret (SECCOMP_GET_ACTION_AVAIL).
func ActionAvailable(ret uint32) error {
	act := ret & unix.SECCOMP_RET_ACTION_FULL
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&act))); e != 0 {
		return e
	}
	return nil
}

// ProbeUserNotif reports whether seccomp user notification is usable here:
// the action exists and the notification structures match this build.
func ProbeUserNotif() error {
	if err := ActionAvailable(unix.SECCOMP_RET_USER_NOTIF); err != nil {
		return &FeatureError{Feature: "SECCOMP_RET_USER_NOTIF", MinKernel: "5.0", Err: err}
	}
	return CheckNotifSizes()
}
