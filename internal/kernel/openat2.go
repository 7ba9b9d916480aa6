package kernel

import (
	"errors"
	"slices"
	"unsafe"

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

// Creds are the credentials a file operation is checked against: the
// filesystem UID and GID, the supplementary groups and the effective
// capabilities (CAP_DAC_OVERRIDE and friends decide opens too).
type Creds struct {
	FSUID, FSGID uint32
	Groups       []uint32 // supplementary groups, as /proc/PID/status lists them
	CapEff       uint64   // effective capability set
}

func (c *Creds) equal(o *Creds) bool {
	return c.FSUID == o.FSUID && c.FSGID == o.FSGID && c.CapEff == o.CapEff && slices.Equal(c.Groups, o.Groups)
}

// CredSwitcher runs functions with a target's credentials on one locked
// OS thread. setfsuid(2), setfsgid(2), the raw setgroups(2) and capset(2)
// change only the calling thread, so the switcher must be created and
// used on the same locked thread (the receive loop's); it remembers the
// thread's own credentials so that the common case — the target runs as
// archangel's user with the same groups and capabilities — costs no
// system call at all.
type CredSwitcher struct {
	own     Creds
	permCap uint64 // the thread's permitted set: effective bits can come back from it
}

// NewCredSwitcher records the calling thread's credentials.
func NewCredSwitcher() *CredSwitcher {
	uid, _ := unix.SetfsuidRetUid(-1) // -1 is invalid: returns the current value, changes nothing
	gid, _ := unix.SetfsgidRetGid(-1)
	s := &CredSwitcher{own: Creds{FSUID: uint32(uid), FSGID: uint32(gid)}}
	if n, err := unix.Getgroups(); err == nil {
		for _, g := range n {
			s.own.Groups = append(s.own.Groups, uint32(g))
		}
	}
	s.own.CapEff, s.permCap, _ = capGet()
	return s
}

// Do runs fn with the target's credentials c, and restores the thread's
// own afterwards. If a switch does not take (archangel lacks CAP_SETUID,
// CAP_SETGID or the target's capabilities), fn does not run and Do
// returns EPERM: the operation is refused, never done as archangel.
func (s *CredSwitcher) Do(c Creds, fn func() error) error {
	if c.equal(&s.own) {
		return fn()
	}
	if c.CapEff&^s.permCap != 0 {
		return unix.EPERM // the target holds a capability archangel cannot take on
	}
	// Groups and the GID first, while the thread still has CAP_SETGID;
	// the capabilities last. Restored in the reverse order.
	groupsSet := !slices.Equal(c.Groups, s.own.Groups)
	if groupsSet {
		if err := setgroupsThread(c.Groups); err != nil {
			return unix.EPERM
		}
		defer setgroupsThread(s.own.Groups)
	}
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
	// setfsuid away from 0 has already dropped the DAC capabilities from
	// the effective set; set it to the target's exactly.
	if eff, _, err := capGet(); err != nil || eff != c.CapEff {
		if err := capSetEffective(c.CapEff, s.permCap); err != nil {
			return unix.EPERM
		}
		defer capSetEffective(s.own.CapEff, s.permCap)
	}
	return fn()
}

// setgroupsThread sets the calling thread's supplementary groups with the
// raw system call (glibc and Go's syscall package change every thread).
func setgroupsThread(groups []uint32) error {
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(p), 0); e != 0 {
		return e
	}
	return nil
}

func capGet() (eff, perm uint64, err error) {
	h := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var d [2]unix.CapUserData
	if err := unix.Capget(&h, &d[0]); err != nil {
		return 0, 0, err
	}
	return uint64(d[0].Effective) | uint64(d[1].Effective)<<32, uint64(d[0].Permitted) | uint64(d[1].Permitted)<<32, nil
}

// capSetEffective sets the calling thread's effective set, keeping its
// permitted and inheritable sets.
func capSetEffective(eff, _ uint64) error {
	h := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var d [2]unix.CapUserData
	if err := unix.Capget(&h, &d[0]); err != nil {
		return err
	}
	d[0].Effective, d[1].Effective = uint32(eff), uint32(eff>>32)
	return unix.Capset(&h, &d[0])
}
