package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/internal/kernel"
)

// Emulated open: when a verdict to allow an open depends on the path, the
// supervisor performs the open itself, on the path it checked, and installs
// the descriptor in the target with SECCOMP_IOCTL_NOTIF_ADDFD +
// SECCOMP_ADDFD_FLAG_SEND, which also answers the notification. The kernel
// never re-reads the target's path buffer, so a thread that rewrites it
// after the check gains nothing (seccomp_unotify(2), "Caveats").

// canonicalPath resolves every symlink in the absolute path p, as the
// target would see them, component by component, and returns the path with
// none left. The open then refuses any symlink (kernel.OpenNoSymlinks), so
// a component that turns into a symlink after this point fails the open
// instead of redirecting it.
func canonicalPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", unix.EINVAL
	}
	resolved := "/"
	rest := strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")
	for hops := 0; len(rest) > 0; {
		comp := rest[0]
		rest = rest[1:]
		if comp == "" || comp == "." {
			continue
		}
		if comp == ".." {
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, comp)
		target, err := os.Readlink(next)
		if err != nil {
			// Not a symlink (EINVAL), or missing (ENOENT: O_CREAT may make
			// it; the open reports what the kernel would): keep the name.
			resolved = next
			if !errors.Is(err, unix.EINVAL) && len(rest) > 0 && !errors.Is(err, unix.ENOENT) {
				return "", err
			}
			continue
		}
		if hops++; hops > 40 { // MAXSYMLINKS
			return "", unix.ELOOP
		}
		if filepath.IsAbs(target) {
			resolved = "/"
		}
		rest = append(strings.Split(strings.Trim(target, "/"), "/"), rest...)
	}
	return resolved, nil
}

// emulateOpen opens c.Path (already decided) for the target and answers n
// with the new descriptor. It returns the errno to answer with when the
// open fails, or 0 when the notification has been answered by ADDFD.
func (s *Supervisor) emulateOpen(n *kernel.Notif, c *analyzer.Call, creds kernel.Creds) (unix.Errno, error) {
	// O_CLOEXEC belongs to the target's descriptor (ADDFD's newfd_flags);
	// archangel's own copy is always close-on-exec.
	flags := c.Flags &^ unix.O_CLOEXEC
	var fd int
	err := s.creds.Do(creds, func() error {
		var err error
		fd, err = kernel.OpenNoSymlinks(c.Path, flags, uint64(c.Mode))
		return err
	})
	if err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) {
			return errno, nil
		}
		return unix.EPERM, err
	}
	defer unix.Close(fd)
	if _, err := kernel.NotifAddFD(s.listener, n.ID, fd, c.Flags&unix.O_CLOEXEC != 0, true); err != nil {
		if errors.Is(err, kernel.ErrNotifGone) {
			return 0, err
		}
		return unix.EPERM, err
	}
	return 0, nil
}
