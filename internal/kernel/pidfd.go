package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// PidfdOpen returns a pidfd for pid (pidfd_open(2), Linux 5.3).
func PidfdOpen(pid int) (*FD, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return nil, &FeatureError{Feature: "pidfd_open", MinKernel: "5.3", Err: err}
		}
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return NewFD(fd), nil
}

// PidfdGetFD duplicates descriptor fd of the process behind pidfd into this
// process, close-on-exec (pidfd_getfd(2), Linux 5.6). It needs ptrace
// access to that process (PTRACE_MODE_ATTACH_REALCREDS).
func PidfdGetFD(pidfd *FD, fd int) (int, error) {
	n, err := unix.PidfdGetfd(pidfd.Int(), fd, 0)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return -1, &FeatureError{Feature: "pidfd_getfd", MinKernel: "5.6", Err: err}
		}
		return -1, fmt.Errorf("pidfd_getfd: %w", err)
	}
	return n, nil
}

// ProbePidfdGetFD reports whether this process can take descriptors from
// its children with pidfd_getfd: the call exists and is not filtered (a
// container runtime's seccomp profile may deny it), and Yama does not
// restrict ptrace to administrators.
func ProbePidfdGetFD() error {
	self, err := PidfdOpen(os.Getpid())
	if err != nil {
		return err
	}
	defer self.Close()
	n, err := PidfdGetFD(self, self.Int())
	if err != nil {
		return err
	}
	unix.Close(n)
	if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		scope := strings.TrimSpace(string(b))
		if scope == "3" || scope == "2" && !hasCapSysPtrace() {
			return fmt.Errorf("pidfd_getfd: Yama ptrace_scope=%s forbids it", scope)
		}
	}
	return nil
}

func hasCapSysPtrace() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_PTRACE) != 0
}
