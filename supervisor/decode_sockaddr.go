package supervisor

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
)

// Sizes of the address structures the kernel checks lengths against.
const (
	sizeofSockaddrIn    = 16  // struct sockaddr_in
	sizeofSockaddrIn6V0 = 24  // SIN6_LEN_RFC2133: sockaddr_in6 without sin6_scope_id
	sizeofSockaddrIn6   = 28  // struct sockaddr_in6
	sizeofSockaddrUn    = 110 // struct sockaddr_un
	sizeofMsghdr        = 56  // struct user_msghdr on x86-64
	sizeofMmsghdr       = 64  // struct mmsghdr: msghdr, msg_len, padding
	maxMmsg             = 1024
)

// parseSockaddr decodes the socket address a target passed (addrlen bytes)
// the way the kernel reads it. Lengths the kernel refuses are EINVAL
// errors; a family archangel does not know is returned with only Family
// set.
//
//   - AF_INET: at least sizeof(struct sockaddr_in) (inet_stream_connect,
//     inet_bind, udp_sendmsg all insist).
//   - AF_INET6: at least SIN6_LEN_RFC2133 (24); sin6_scope_id, when
//     present and non-zero, becomes the zone (decimal).
//   - AF_UNIX: exactly the family (2 bytes) is an unnamed address
//     (autobind on bind; EINVAL on connect, which the kernel reports);
//     a first sun_path byte of 0 is the abstract namespace, whose name is
//     every following byte up to addrlen, NULs included; otherwise a path
//     that ends at addrlen or the first NUL. More than sizeof(struct
//     sockaddr_un) is EINVAL. A relative path is returned as is;
//     decodeCall resolves it against the cwd.
//   - AF_UNSPEC: the kernel treats it as AF_INET in two places: bind of
//     an IPv4 socket with INADDR_ANY, and sendto/sendmsg on an IPv4 UDP
//     socket (udp_sendmsg accepts AF_UNSPEC and sends to sin_addr). So an
//     AF_UNSPEC address of sizeof(struct sockaddr_in) or more also carries
//     its IPv4 fields in Addr; Family stays 0 (on connect it means
//     "disconnect", on an IPv6 or unix socket "no address"). A rule that
//     decides on addresses must look at Addr whenever it is valid.
func parseSockaddr(b []byte) (analyzer.SockAddr, error) {
	if len(b) < 2 {
		return analyzer.SockAddr{}, &decodeError{Errno: unix.EINVAL, What: fmt.Sprintf("socket address of %d bytes", len(b))}
	}
	sa := analyzer.SockAddr{Family: binary.NativeEndian.Uint16(b)}
	switch sa.Family {
	case unix.AF_INET, unix.AF_UNSPEC:
		if len(b) < sizeofSockaddrIn {
			if sa.Family == unix.AF_UNSPEC {
				return sa, nil
			}
			return analyzer.SockAddr{}, &decodeError{Errno: unix.EINVAL, What: fmt.Sprintf("AF_INET address of %d bytes", len(b))}
		}
		sa.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:]))
	case unix.AF_INET6:
		if len(b) < sizeofSockaddrIn6V0 {
			return analyzer.SockAddr{}, &decodeError{Errno: unix.EINVAL, What: fmt.Sprintf("AF_INET6 address of %d bytes", len(b))}
		}
		ip := netip.AddrFrom16([16]byte(b[8:24]))
		if len(b) >= sizeofSockaddrIn6 {
			if scope := binary.NativeEndian.Uint32(b[24:]); scope != 0 {
				ip = ip.WithZone(strconv.FormatUint(uint64(scope), 10))
			}
		}
		sa.Addr = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:]))
	case unix.AF_UNIX:
		switch {
		case len(b) > sizeofSockaddrUn:
			return analyzer.SockAddr{}, &decodeError{Errno: unix.EINVAL, What: fmt.Sprintf("AF_UNIX address of %d bytes", len(b))}
		case len(b) == 2:
			sa.Unnamed = true
		case b[2] == 0:
			sa.Abstract, sa.Unix = true, string(b[3:])
		default:
			p := b[2:]
			for i, c := range p {
				if c == 0 {
					p = p[:i]
					break
				}
			}
			sa.Unix = string(p)
		}
	}
	return sa, nil
}

// addrLen is a socklen_t argument as the kernel sees it (an int):
// negative or more than sizeof(struct sockaddr_storage) is EINVAL
// (move_addr_to_kernel).
func addrLen(reg uint64, what string) (int, error) {
	n := int32(uint32(reg))
	if n < 0 || n > maxSockaddr {
		return 0, &decodeError{Errno: unix.EINVAL, What: fmt.Sprintf("%s length %d", what, n)}
	}
	return int(n), nil
}

// sockaddrAt reads and parses the address of n bytes at addr.
func sockaddrAt(r memReader, addr uint64, n int, what string) (*analyzer.SockAddr, error) {
	var buf [maxSockaddr]byte
	if err := r.read(addr, buf[:n]); err != nil {
		return nil, readError(err, what)
	}
	sa, err := parseSockaddr(buf[:n])
	if err != nil {
		return nil, err
	}
	return &sa, nil
}

// msgName reads the destination address of the struct user_msghdr at addr:
// nil when it has none. The kernel ignores msg_namelen when msg_name is
// NULL, refuses a negative one and clamps one above
// sizeof(struct sockaddr_storage) (__copy_msghdr); a length of 0 means no
// address.
func msgName(r memReader, addr uint64, what string) (*analyzer.SockAddr, error) {
	var h [16]byte // msg_name, msg_namelen
	if err := r.read(addr, h[:]); err != nil {
		return nil, readError(err, what)
	}
	name := binary.NativeEndian.Uint64(h[0:])
	n := int32(binary.NativeEndian.Uint32(h[8:]))
	switch {
	case name == 0:
		return nil, nil
	case n < 0:
		return nil, &decodeError{Errno: unix.EINVAL, What: fmt.Sprintf("%s: msg_namelen %d", what, n)}
	case n == 0:
		return nil, nil
	case n > maxSockaddr:
		n = maxSockaddr
	}
	return sockaddrAt(r, name, int(n), what+" msg_name")
}

func sameSockaddr(a, b *analyzer.SockAddr) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
