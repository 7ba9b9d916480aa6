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

// WithCreds runs fn on the calling (locked) OS thread with the filesystem
// UID and GID set to c, and restores them afterwards. setfsuid(2) and
// setfsgid(2) change only the calling thread; the caller must hold the OS
// thread (runtime.LockOSThread). When c already matches this thread, fn
// simply runs.
func WithCreds(c Creds, fn func() error) error {
	oldUID, _ := unix.SetfsuidRetUid(-1)
	oldGID, _ := unix.SetfsgidRetGid(-1)
	if uint32(oldUID) == c.FSUID && uint32(oldGID) == c.FSGID {
		return fn()
	}
	// Order: group first, while we still have the privilege to change it.
	unix.SetfsgidRetGid(int(c.FSGID))
	unix.SetfsuidRetUid(int(c.FSUID))
	defer func() {
		unix.SetfsuidRetUid(oldUID)
		unix.SetfsgidRetGid(oldGID)
	}()
	if got, _ := unix.SetfsuidRetUid(-1); uint32(got) != c.FSUID {
		return unix.EPERM // could not take the target's identity: refuse
	}
	if got, _ := unix.SetfsgidRetGid(-1); uint32(got) != c.FSGID {
		return unix.EPERM
	}
	return fn()
}
