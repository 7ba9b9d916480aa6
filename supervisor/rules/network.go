package rules

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/archangel-sandbox/archangel/profiles"
)

// Host name refresh. Go's resolver does not return TTLs, so a name is
// looked up again RefreshMin after an answer that changed its addresses
// (or a failure), and after twice the previous interval, up to RefreshMax,
// while answers stay the same. An address stays in the set until
// AddrRetention has passed since the last successful answer that
// contained it, so that a round-robin name whose answers rotate keeps the
// addresses the target may just have been given. When lookups keep
// failing, a connect or bind entry loses its addresses AddrRetention after
// the last success (fail closed); a deny entry keeps them.
const (
	RefreshMin    = 30 * time.Second
	RefreshMax    = 5 * time.Minute
	AddrRetention = 15 * time.Minute
	// LookupTimeout bounds each lookup within the caller's context.
	LookupTimeout = 5 * time.Second
)

// Socket address families (linux/socket.h).
const (
	afUnix  = 1
	afInet  = 2
	afInet6 = 10
)

// netSource is one [network] entry as compiled; hosts are expanded into
// netRules at Compile and at each Refresh.
type netSource struct {
	info int
	kind RuleKind
	ep   profiles.Endpoint
	text string // `pos network.connect[0] "entry"`
	pfx  netip.Prefix
	unix *pathGlob // unix:/path
}

func (n *netSource) deny() bool { return n.kind == KindNetDeny }

// netRule is one matchable entry.
type netRule struct {
	info   int
	deny   bool
	star   bool // "*": every address of every family
	any    bool // "*:PORTS": every IPv4 and IPv6 address
	pfx    netip.Prefix
	lo, hi uint16
	unix   *pathGlob
	abs    string // abstract socket name, without the '@'
	key    uint64
	text   string
}

// netLists holds the candidates for one call kind, most specific first.
type netLists struct {
	ip, unix, abstract, other []*netRule
}

// hostState is what is known about one host name. It is never changed
// once a Set holds it; Refresh copies.
type hostState struct {
	seen     map[netip.Addr]time.Time // address -> last successful answer containing it
	lastOK   time.Time                // zero: never resolved
	err      error                    // the last lookup's error
	next     time.Time
	interval time.Duration
}

// addrs returns the addresses an entry uses at now.
func (h *hostState) addrs(now time.Time, deny bool) []netip.Addr {
	if h.lastOK.IsZero() || !deny && now.Sub(h.lastOK) > AddrRetention {
		return nil
	}
	var out []netip.Addr
	for a, t := range h.seen {
		if h.lastOK.Sub(t) <= AddrRetention {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func (s *Set) compileNetwork(ctx context.Context, p *profiles.Profile) []error {
	var errs []error
	lists := []struct {
		kind RuleKind
		eps  []profiles.Endpoint
	}{
		{KindNetConnect, p.Network.Connect},
		{KindNetBind, p.Network.Bind},
		{KindNetDeny, p.Network.Deny},
	}
	var hosts []string
	denyHost := map[string]bool{}
	for _, l := range lists {
		for i, ep := range l.eps {
			src := fmt.Sprintf("%s[%d]", l.kind, i)
			n := &netSource{info: len(s.infos), kind: l.kind, ep: ep, text: fmt.Sprintf("%s %s %q", ep.Pos, src, ep.Text)}
			switch {
			case ep.Unix != "" && ep.Unix[0] == '/':
				g, err := compilePathGlob(ep.Unix)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %s %q: bad unix socket path glob: %w", ep.Pos, src, ep.Text, err))
					continue
				}
				n.unix = g
			case ep.Unix != "":
			case ep.Host != "":
				if _, ok := s.hosts[ep.Host]; !ok {
					s.hosts[ep.Host] = nil
					hosts = append(hosts, ep.Host)
				}
				denyHost[ep.Host] = denyHost[ep.Host] || l.kind == KindNetDeny
			case !ep.Any:
				if !ep.Prefix.IsValid() {
					errs = append(errs, fmt.Errorf("%s: %s %q: no address, host, unix path or *", ep.Pos, src, ep.Text))
					continue
				}
				n.pfx = normPrefix(ep.Prefix)
			}
			action := profiles.ActionAllow
			var errno profiles.Errno
			if l.kind == KindNetDeny {
				action, errno = profiles.ActionErrno, DenyErrno
			}
			s.infos = append(s.infos, RuleInfo{Index: n.info, Pos: ep.Pos, Kind: l.kind, Source: src, Text: ep.Text, Action: action, Errno: errno})
			s.nets = append(s.nets, n)
		}
	}
	now := s.now()
	for _, h := range hosts {
		st := &hostState{seen: map[netip.Addr]time.Time{}}
		s.lookup(ctx, h, st, now)
		s.hosts[h] = st
		if st.err == nil {
			continue
		}
		var dnsErr *net.DNSError
		notFound := errors.As(st.err, &dnsErr) && dnsErr.IsNotFound
		if denyHost[h] && !notFound {
			// A deny entry that matches nothing would let through what it
			// names: refuse to launch rather than deny less.
			for _, n := range s.nets {
				if n.ep.Host == h && n.deny() {
					errs = append(errs, fmt.Errorf("%s: %s: resolve %s: %w\n\thint: a deny entry must resolve at launch; write its addresses instead, or retry when DNS works", n.ep.Pos, strings.SplitN(n.text, " ", 2)[1], h, st.err))
				}
			}
			continue
		}
		s.warnings = append(s.warnings, fmt.Sprintf("resolve %s: %v; entries naming it match nothing until a Refresh resolves it", h, st.err))
	}
	s.rebuildNet(now)
	return errs
}

// lookup resolves h into st at now and schedules the next lookup.
func (s *Set) lookup(ctx context.Context, h string, st *hostState, now time.Time) (changed bool) {
	var addrs []netip.Addr
	err := errors.New("no resolver")
	if s.res != nil {
		lctx, cancel := context.WithTimeout(ctx, LookupTimeout)
		addrs, err = s.res.LookupNetIP(lctx, "ip", h)
		cancel()
	}
	if err == nil && len(addrs) == 0 {
		err = &net.DNSError{Err: "no addresses", Name: h, IsNotFound: true}
	}
	st.err = err
	if err != nil {
		st.interval = RefreshMin
		st.next = now.Add(RefreshMin)
		return false
	}
	before := st.addrs(now, true)
	for _, a := range addrs {
		st.seen[a.Unmap().WithZone("")] = now
	}
	st.lastOK = now
	if slices.Equal(before, st.addrs(now, true)) && st.interval > 0 {
		st.interval = min(2*st.interval, RefreshMax)
	} else {
		changed = true
		st.interval = RefreshMin
	}
	st.next = now.Add(st.interval)
	return changed
}

// normPrefix puts an IPv4-mapped IPv6 prefix (::ffff:a.b.c.d/96+n) in its
// IPv4 form: connect and bind addresses are unmapped before matching, so
// a v4-mapped destination is IPv4 traffic and matches IPv4 entries.
func normPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// rebuildNet makes the candidate lists from the sources and the host
// states at now, and updates the Addrs of the RuleInfos.
func (s *Set) rebuildNet(now time.Time) {
	s.connect, s.bind = netLists{}, netLists{}
	s.next = time.Time{}
	for _, st := range s.hosts {
		if s.next.IsZero() || st.next.Before(s.next) {
			s.next = st.next
		}
	}
	for _, n := range s.nets {
		info := &s.infos[n.info]
		info.Addrs, info.Note = nil, ""
		var rs []*netRule
		base := netRule{info: n.info, deny: n.deny(), lo: n.ep.PortLo, hi: n.ep.PortHi, text: n.text}
		switch {
		case n.ep.Unix != "":
			r := base
			if n.unix != nil {
				r.unix = n.unix
				r.key = 1<<62 | n.unix.spec.key()>>2
			} else {
				r.abs = n.ep.Unix[1:]
				r.key = 1<<62 | 1<<61
			}
			rs = append(rs, &r)
		case n.ep.Host != "":
			st := s.hosts[n.ep.Host]
			info.Addrs = st.addrs(now, n.deny())
			for _, a := range info.Addrs {
				r := base
				r.pfx = netip.PrefixFrom(a, a.BitLen())
				r.text = n.text + " -> " + a.String()
				rs = append(rs, &r)
			}
			switch {
			case st.err != nil && len(info.Addrs) == 0:
				info.Note = fmt.Sprintf("unresolved (%v): matches nothing", st.err)
			case st.err != nil:
				info.Note = fmt.Sprintf("last lookup failed (%v); keeping the addresses of %s", st.err, st.lastOK.Format(time.RFC3339))
			}
		case n.ep.Text == "*":
			r := base
			r.star = true
			rs = append(rs, &r)
		case n.ep.Any:
			r := base
			r.any = true
			rs = append(rs, &r)
		default:
			r := base
			r.pfx = n.pfx
			rs = append(rs, &r)
		}
		for _, r := range rs {
			if r.pfx.IsValid() {
				r.key = 1<<62 | uint64(r.pfx.Bits()+1)<<17
			} else if r.any {
				r.key = 1 << 62
			}
			if r.unix == nil && r.abs == "" && !r.star {
				r.key |= uint64(65535 - (r.hi - r.lo))
			}
			info.Specificity = int(r.key)
			if n.kind != KindNetBind {
				s.connect.add(r)
			}
			if n.kind != KindNetConnect {
				s.bind.add(r)
			}
		}
		if len(rs) == 0 {
			info.Specificity = 0
		}
	}
	for _, l := range []*netLists{&s.connect, &s.bind} {
		for _, rs := range [][]*netRule{l.ip, l.unix, l.abstract, l.other} {
			slices.SortStableFunc(rs, func(a, b *netRule) int {
				switch {
				case a.key != b.key:
					if a.key > b.key {
						return -1
					}
					return 1
				case a.deny != b.deny:
					if a.deny {
						return -1
					}
					return 1
				}
				return a.info - b.info
			})
		}
	}
}

func (l *netLists) add(r *netRule) {
	switch {
	case r.star:
		l.ip = append(l.ip, r)
		l.unix = append(l.unix, r)
		l.abstract = append(l.abstract, r)
		l.other = append(l.other, r)
	case r.unix != nil:
		l.unix = append(l.unix, r)
	case r.abs != "":
		l.abstract = append(l.abstract, r)
	default:
		l.ip = append(l.ip, r)
	}
}

// NextRefresh is when Refresh next has work to do; zero when no entry
// names a host.
func (s *Set) NextRefresh() time.Time { return s.next }

// Refresh looks up again the host names that are due (see RefreshMin) and
// returns the Set to use from now on: s itself when nothing was due, a new
// Set otherwise, with Version bumped when any entry's addresses changed.
// Lookup failures are returned joined, with the new Set (which keeps the
// previous addresses as documented at AddrRetention).
func (s *Set) Refresh(ctx context.Context) (*Set, error) {
	now := s.now()
	var due []string
	for h, st := range s.hosts {
		if !st.next.After(now) {
			due = append(due, h)
		}
	}
	if len(due) == 0 {
		return s, nil
	}
	slices.Sort(due)
	n := *s
	n.hosts = maps.Clone(s.hosts)
	n.infos = slices.Clone(s.infos)
	n.warnings = slices.Clone(s.warnings)
	var errs []error
	before := map[int][]netip.Addr{}
	for _, src := range s.nets {
		if src.ep.Host != "" {
			before[src.info] = s.infos[src.info].Addrs
		}
	}
	for _, h := range due {
		old := s.hosts[h]
		st := &hostState{seen: maps.Clone(old.seen), lastOK: old.lastOK, interval: old.interval}
		n.lookup(ctx, h, st, now)
		n.hosts[h] = st
		if st.err != nil {
			errs = append(errs, fmt.Errorf("refresh %s: %w", h, st.err))
		}
	}
	n.rebuildNet(now)
	for info, addrs := range before {
		if !slices.Equal(addrs, n.infos[info].Addrs) {
			n.version = s.version + 1
			break
		}
	}
	return &n, errors.Join(errs...)
}
