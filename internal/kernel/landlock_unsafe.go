package kernel

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock (landlock(7)) is how archangel enforces path allow-lists without
// a race: the kernel checks the path it actually resolves, after any
// change the target makes to its own memory. The shim applies the ruleset
// to its own thread between no_new_privs and the seccomp filter, and the
// target inherits it across execve.

// Landlock filesystem access rights (ABI 1 unless noted).
const (
	LandlockExecute    = unix.LANDLOCK_ACCESS_FS_EXECUTE
	LandlockWriteFile  = unix.LANDLOCK_ACCESS_FS_WRITE_FILE
	LandlockReadFile   = unix.LANDLOCK_ACCESS_FS_READ_FILE
	LandlockReadDir    = unix.LANDLOCK_ACCESS_FS_READ_DIR
	LandlockRemoveDir  = unix.LANDLOCK_ACCESS_FS_REMOVE_DIR
	LandlockRemoveFile = unix.LANDLOCK_ACCESS_FS_REMOVE_FILE
	LandlockMakeChar   = unix.LANDLOCK_ACCESS_FS_MAKE_CHAR
	LandlockMakeDir    = unix.LANDLOCK_ACCESS_FS_MAKE_DIR
	LandlockMakeReg    = unix.LANDLOCK_ACCESS_FS_MAKE_REG
	LandlockMakeSock   = unix.LANDLOCK_ACCESS_FS_MAKE_SOCK
	LandlockMakeFifo   = unix.LANDLOCK_ACCESS_FS_MAKE_FIFO
	LandlockMakeBlock  = unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK
	LandlockMakeSym    = unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	LandlockRefer      = unix.LANDLOCK_ACCESS_FS_REFER    // ABI 2
	LandlockTruncate   = unix.LANDLOCK_ACCESS_FS_TRUNCATE // ABI 3
)

// LandlockABI returns the Landlock ABI version of the running kernel.
func LandlockABI() (int, error) {
	r, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		if e == unix.ENOSYS || e == unix.EOPNOTSUPP {
			return 0, &FeatureError{Feature: "Landlock", MinKernel: "5.13 (and enabled in the LSM list)", Err: e}
		}
		return 0, e
	}
	return int(r), nil
}

// LandlockRule grants Access below (or on) Path.
type LandlockRule struct {
	Path   string
	Access uint64
}

// LandlockRuleset builds a ruleset that handles the rights in handled and
// grants each rule; it returns the ruleset fd for RestrictSelf. Rights the
// running ABI does not know are dropped from both sides (a right the
// kernel cannot handle is not restricted, which Landlock documents as
// best effort — the caller decides whether that is acceptable). A path
// that does not exist is skipped and reported in missing.
func LandlockRuleset(handled uint64, rules []LandlockRule) (fd *FD, missing []string, err error) {
	abi, err := LandlockABI()
	if err != nil {
		return nil, nil, err
	}
	known := uint64(LandlockExecute | LandlockWriteFile | LandlockReadFile | LandlockReadDir | LandlockRemoveDir |
		LandlockRemoveFile | LandlockMakeChar | LandlockMakeDir | LandlockMakeReg | LandlockMakeSock |
		LandlockMakeFifo | LandlockMakeBlock | LandlockMakeSym)
	if abi >= 2 {
		known |= LandlockRefer
	}
	if abi >= 3 {
		known |= LandlockTruncate
	}
	handled &= known
	attr := unix.LandlockRulesetAttr{Handled_access_fs: handled}
	r, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr.Handled_access_fs), 0)
	if e != 0 {
		return nil, nil, fmt.Errorf("landlock_create_ruleset: %w", e)
	}
	rs := NewFD(int(r))
	for _, rule := range rules {
		pfd, err := unix.Open(rule.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				missing = append(missing, rule.Path)
				continue
			}
			rs.Close()
			return nil, nil, fmt.Errorf("landlock rule %s: %w", rule.Path, err)
		}
		access := rule.Access & handled
		var st unix.Stat_t
		if unix.Fstat(pfd, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			// Directory-only rights on a file are EINVAL.
			access &= LandlockExecute | LandlockWriteFile | LandlockReadFile | LandlockTruncate
		}
		pb := unix.LandlockPathBeneathAttr{Allowed_access: access, Parent_fd: int32(pfd)}
		_, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(rs.Int()), unix.LANDLOCK_RULE_PATH_BENEATH,
			uintptr(unsafe.Pointer(&pb)), 0, 0, 0)
		unix.Close(pfd)
		if e != 0 && access != 0 {
			rs.Close()
			return nil, nil, fmt.Errorf("landlock_add_rule %s: %w", rule.Path, e)
		}
	}
	return rs, missing, nil
}
