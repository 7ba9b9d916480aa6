package supervisor

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
)

// ExplainCall builds the decoded form of a call from what a person types
// (`archangel profile explain`, `profile replay`): the syscall's kind and
// access as the decoder would set them, the path made absolute (and, for
// the open family, resolved through symlinks as the supervisor does), the
// address parsed.
func ExplainCall(name string, args [6]uint64, path, addr string) (analyzer.Call, error) {
	nr, ok := profiles.SyscallNr(name)
	if !ok || nr >= len(callSpecs) {
		return analyzer.Call{}, fmt.Errorf("unknown syscall %q", name)
	}
	spec := callSpecs[nr]
	c := analyzer.Call{Nr: int32(nr), Name: name, Arch: auditArchX8664, Args: args, Kind: spec.kind, Access: spec.access}
	if path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return c, err
		}
		c.Path = filepath.Clean(abs)
		if c.Kind == analyzer.KindOpen {
			flagArg := map[string]int{"open": 1, "openat": 2, "creat": -1, "openat2": -1}[name]
			if flagArg >= 0 {
				c.Flags = args[flagArg]
			} else if name == "creat" {
				c.Flags = unix.O_CREAT | unix.O_WRONLY | unix.O_TRUNC
			}
			c.Access = openAccess(c.Flags)
			// Open rules decide on the file the kernel opens (enforce.go).
			if cp, err := canonicalOpenPath(c.Path, c.Flags); err == nil {
				c.Path = cp
			}
		}
	}
	if addr != "" {
		sa := &analyzer.SockAddr{}
		if rest, ok := strings.CutPrefix(addr, "unix:"); ok {
			sa.Family = unix.AF_UNIX
			sa.Unix, sa.Abstract = strings.TrimPrefix(rest, "@"), strings.HasPrefix(rest, "@")
		} else {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return c, fmt.Errorf("--addr %q: want IP:PORT, [IPv6]:PORT or unix:/path: %w", addr, err)
			}
			sa.Family, sa.Addr = unix.AF_INET, ap
			if ap.Addr().Is6() && !ap.Addr().Is4In6() {
				sa.Family = unix.AF_INET6
			}
		}
		c.Addr = sa
	}
	return c, nil
}
