package kernel

import (
	"errors"

	"golang.org/x/sys/unix"
)

// OpenNoSymlinks opens the absolute path with openat2(2) refusing every
// symlink and magic link on the way (RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS): the file opened is the one at exactly that path,
// whatever the target does to the tree after archangel resolved it. The
// descriptor is close-on-exec in archangel. ELOOP means a component became
// a symlink since it was resolved.
func OpenNoSymlinks(path string, flags uint64, mode uint64) (int, error) {
	how := unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC,
		Mode:    mode,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(unix.AT_FDCWD, path, &how)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if errors.Is(err, unix.ENOSYS) {
			return -1, &FeatureError{Feature: "openat2", MinKernel: "5.6", Err: err}
		}
		return fd, err
	}
}

// Creds are the filesystem credentials a file operation runs with.
type Creds struct {
	FSUID, FSGID uint32
}

// CredSwitcher runs functions with a target's filesystem credentials on
// one locked OS thread. setfsuid(2) and setfsgid(2) change only the
// calling thread, so the switcher must be created and used on the same
// locked thread (the receive loop's); it remembers the thread's own
// credentials so that the common case — the target runs as archangel's
// user — costs no system call at all.
type CredSwitcher struct {
	own Creds
}

// NewCredSwitcher records the calling thread's filesystem credentials.
func NewCredSwitcher() *CredSwitcher {
	uid, _ := unix.SetfsuidRetUid(-1) // -1 is invalid: returns the current value, changes nothing
	gid, _ := unix.SetfsgidRetGid(-1)
	return &CredSwitcher{own: Creds{FSUID: uint32(uid), FSGID: uint32(gid)}}
}

// Do runs fn with the filesystem UID and GID set to c, and restores the
// thread's own afterwards. If the switch does not take (archangel lacks
// CAP_SETUID/CAP_SETGID for a target of another user), fn does not run
// and Do returns EPERM: the operation is refused, never done as archangel.
func (s *CredSwitcher) Do(c Creds, fn func() error) error {
	if c == s.own {
		return fn()
	}
	// Group first, while we still have the privilege to change it.
	unix.SetfsgidRetGid(int(c.FSGID))
	unix.SetfsuidRetUid(int(c.FSUID))
	defer func() {
		unix.SetfsuidRetUid(int(s.own.FSUID))
		unix.SetfsgidRetGid(int(s.own.FSGID))
	}()
	if got, _ := unix.SetfsuidRetUid(-1); uint32(got) != c.FSUID {
		return unix.EPERM
	}
	if got, _ := unix.SetfsgidRetGid(-1); uint32(got) != c.FSGID {
		return unix.EPERM
	}
	return fn()
}
