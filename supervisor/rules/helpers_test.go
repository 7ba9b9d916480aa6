package rules

import (
	"context"
	"net"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
)

var testEnv = Env{CWD: "/home/u/src", HOME: "/home/u"}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeResolver answers from a table; a missing name is NXDOMAIN, an entry
// with err fails.
type fakeResolver struct {
	mu    sync.Mutex
	addrs map[string][]netip.Addr
	errs  map[string]error
	calls map[string]int
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{addrs: map[string][]netip.Addr{}, errs: map[string]error{}, calls: map[string]int{}}
}

func (r *fakeResolver) set(host string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.errs, host)
	r.addrs[host] = nil
	for _, a := range addrs {
		r.addrs[host] = append(r.addrs[host], netip.MustParseAddr(a))
	}
}

func (r *fakeResolver) fail(host string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[host] = err
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[host]++
	if network != "ip" {
		return nil, &net.DNSError{Err: "bad network " + network, Name: host}
	}
	if err := r.errs[host]; err != nil {
		return nil, err
	}
	a, ok := r.addrs[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return append([]netip.Addr(nil), a...), nil
}

var errTemporary = &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}

func parse(t testing.TB, doc string) *profiles.Profile {
	t.Helper()
	// The launcher check wants a profile default that runs the launcher's
	// calls; appended so that the positions in doc stay as written.
	p, err := profiles.Parse("t.toml", []byte(doc+"\n[profile]\ndefault = \"allow\"\n"))
	if err != nil {
		t.Fatalf("parse profile: %v", err)
	}
	return p
}

func mustCompile(t testing.TB, doc string) *Set {
	t.Helper()
	s, err := compile(context.Background(), parse(t, doc), testEnv, nil, func() time.Time { return t0 })
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

func openCall(p string, acc analyzer.Access) *analyzer.Call {
	return &analyzer.Call{Name: "openat", Kind: analyzer.KindOpen, Access: acc, Path: p}
}

func pathCall(k analyzer.Kind, p string) *analyzer.Call {
	return &analyzer.Call{Kind: k, Path: p}
}

func execCall(p string, argv ...string) *analyzer.Call {
	return &analyzer.Call{Name: "execve", Kind: analyzer.KindExec, Access: analyzer.AccessExec, Path: p, Argv: argv}
}

func connectCall(addr string) *analyzer.Call {
	ap := netip.MustParseAddrPort(addr)
	fam := uint16(afInet)
	if ap.Addr().Is6() {
		fam = afInet6
	}
	return &analyzer.Call{Name: "connect", Kind: analyzer.KindConnect, Addr: &analyzer.SockAddr{Family: fam, Addr: ap}}
}

func unixCall(k analyzer.Kind, name string, abstract bool) *analyzer.Call {
	c := &analyzer.Call{Name: "connect", Kind: k, Addr: &analyzer.SockAddr{Family: afUnix, Unix: name, Abstract: abstract}}
	if k == analyzer.KindBind {
		c.Name = "bind"
	}
	return c
}

// want is the part of a verdict a table checks; source is the rule's
// "list[i]" ("" for no match).
type want struct {
	action profiles.Action
	source string
	safety Safety
	note   string
}

func (s *Set) sourceOf(v Verdict) string {
	if !v.Matched {
		return ""
	}
	return s.infos[v.Index].Source
}

func check(t *testing.T, s *Set, v Verdict, w want) {
	t.Helper()
	if got := s.sourceOf(v); got != w.source {
		t.Errorf("decided by %q, want %q (verdict: %v)", got, w.source, v)
		return
	}
	if !v.Matched {
		if v != noMatch {
			t.Errorf("unmatched verdict has fields set: %+v", v)
		}
		return
	}
	if v.Action != w.action {
		t.Errorf("action %v, want %v (verdict: %v)", v.Action, w.action, v)
	}
	if v.Action == profiles.ActionErrno && v.Errno != DenyErrno {
		t.Errorf("errno %v, want EACCES", v.Errno)
	}
	if v.Safety != w.safety {
		t.Errorf("safety %v, want %v (verdict: %v)", v.Safety, w.safety, v)
	}
	if v.Note != w.note {
		t.Errorf("note %q, want %q", v.Note, w.note)
	}
	if v.Rule == "" || v.Specificity != s.infos[v.Index].Specificity && s.infos[v.Index].Kind < KindNetConnect {
		t.Errorf("rule %q specificity %d (info %d)", v.Rule, v.Specificity, s.infos[v.Index].Specificity)
	}
}

var (
	allow = profiles.ActionAllow
	deny  = profiles.ActionErrno
)

func sortedKeys[M ~map[string]V, V any](m M) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
