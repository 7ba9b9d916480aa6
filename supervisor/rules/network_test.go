package rules

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/archangel-sandbox/archangel/analyzer"
)

const netProfile = `
[network]
connect = ["127.0.0.0/8:*", "[::1]:443", "10.0.0.0/8:8000-8100", "10.1.2.3:8080", "*:443",
           "unix:/run/*.sock", "unix:@abstract", "[::ffff:192.168.0.0]/112:*", "10.9.0.0/16:*",
           "10.8.0.0/16:*"]
bind    = ["0.0.0.0:8000-9000", "unix:/tmp/**"]
deny    = ["*", "10.1.0.0/16:*", "10.9.0.0/16:22", "10.8.0.0/16:*", "[fe80::]/10:*"]
`

func TestNetwork(t *testing.T) {
	s := mustCompile(t, netProfile)
	sendto := connectCall("8.8.8.8:443")
	sendto.Name = "sendto"
	zoned := connectCall("[fe80::1]:22")
	zoned.Addr.Addr = netip.AddrPortFrom(netip.MustParseAddr("fe80::1%eth0"), 22)
	bind := func(addr string) *analyzer.Call {
		c := connectCall(addr)
		c.Kind, c.Name = analyzer.KindBind, "bind"
		return c
	}
	other := &analyzer.Call{Name: "connect", Kind: analyzer.KindConnect, Addr: &analyzer.SockAddr{Family: 16}} // AF_NETLINK
	unnamed := &analyzer.Call{Name: "bind", Kind: analyzer.KindBind, Addr: &analyzer.SockAddr{Family: afUnix, Unnamed: true}}
	tests := []struct {
		name string
		call *analyzer.Call
		want want
	}{
		{"loopback", connectCall("127.0.0.1:22"), want{allow, "network.connect[0]", RaceFree, ""}},
		{"v4-mapped is IPv4", connectCall("[::ffff:127.0.0.1]:22"), want{allow, "network.connect[0]", RaceFree, ""}},
		{"v6 loopback", connectCall("[::1]:443"), want{allow, "network.connect[1]", RaceFree, ""}},
		{"v6 loopback wrong port", connectCall("[::1]:80"), want{deny, "network.deny[0]", RaceFree, ""}},
		{"port range", connectCall("10.0.0.5:8050"), want{allow, "network.connect[2]", RaceFree, ""}},
		{"port range edges", connectCall("10.0.0.5:8100"), want{allow, "network.connect[2]", RaceFree, ""}},
		{"outside port range", connectCall("10.0.0.5:8101"), want{deny, "network.deny[0]", RaceFree, ""}},
		{"host /32 beats /16 deny", connectCall("10.1.2.3:8080"), want{allow, "network.connect[3]", RaceFree, ""}},
		{"/16 deny beats /8 allow", connectCall("10.1.2.4:8080"), want{deny, "network.deny[1]", RaceFree, ""}},
		{"/16 deny beats any-address port", connectCall("10.1.9.9:443"), want{deny, "network.deny[1]", RaceFree, ""}},
		{"any address, one port", connectCall("8.8.8.8:443"), want{allow, "network.connect[4]", RaceFree, ""}},
		{"any address v6", connectCall("[2001:db8::1]:443"), want{allow, "network.connect[4]", RaceFree, ""}},
		{"sendto is advisory", sendto, want{allow, "network.connect[4]", Advisory, ""}},
		{"v4-mapped CIDR", connectCall("192.168.1.1:53"), want{allow, "network.connect[7]", RaceFree, ""}},
		{"narrower port range wins", connectCall("10.9.1.1:22"), want{deny, "network.deny[2]", RaceFree, ""}},
		{"wider range elsewhere", connectCall("10.9.1.1:23"), want{allow, "network.connect[8]", RaceFree, ""}},
		{"deny at equal specificity", connectCall("10.8.1.1:80"), want{deny, "network.deny[3]", RaceFree, ""}},
		{"zone ignored", zoned, want{deny, "network.deny[4]", RaceFree, ""}},
		{"unix glob", unixCall(analyzer.KindConnect, "/run/docker.sock", false), want{allow, "network.connect[5]", RaceFree, ""}},
		{"unix path cleaned", unixCall(analyzer.KindConnect, "/run//./docker.sock", false), want{allow, "network.connect[5]", RaceFree, ""}},
		{"unix glob one element", unixCall(analyzer.KindConnect, "/run/x/y.sock", false), want{deny, "network.deny[0]", RaceFree, ""}},
		{"abstract", unixCall(analyzer.KindConnect, "abstract", true), want{allow, "network.connect[6]", RaceFree, ""}},
		{"abstract is not a path", unixCall(analyzer.KindConnect, "/run/a.sock", true), want{deny, "network.deny[0]", RaceFree, ""}},
		{"other abstract", unixCall(analyzer.KindConnect, "other", true), want{deny, "network.deny[0]", RaceFree, ""}},
		{"other family: only *", other, want{deny, "network.deny[0]", RaceFree, ""}},
		{"unnamed unix: only *", unnamed, want{deny, "network.deny[0]", RaceFree, ""}},
		{"no address", &analyzer.Call{Kind: analyzer.KindConnect, Name: "sendto"}, want{}},
		{"bind list", bind("0.0.0.0:8080"), want{allow, "network.bind[0]", Advisory, ""}},
		{"bind ephemeral port", bind("0.0.0.0:0"), want{deny, "network.deny[0]", RaceFree, ""}},
		{"connect rules do not bind", bind("127.0.0.1:80"), want{deny, "network.deny[0]", RaceFree, ""}},
		{"bind unix", unixCall(analyzer.KindBind, "/tmp/a/b.sock", false), want{allow, "network.bind[1]", Advisory, ""}},
		{"bind rules do not connect", connectCall("0.0.0.0:8080"), want{deny, "network.deny[0]", RaceFree, ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check(t, s, s.Decide(tc.call, nil), tc.want)
		})
	}
}

func TestNetworkWithoutStar(t *testing.T) {
	s := mustCompile(t, `[network]
connect = ["*:*"]
deny = ["10.0.0.0/8:*"]
`)
	check(t, s, s.Decide(connectCall("1.2.3.4:1"), nil), want{allow, "network.connect[0]", RaceFree, ""})
	check(t, s, s.Decide(connectCall("10.2.3.4:1"), nil), want{deny, "network.deny[0]", RaceFree, ""})
	// "*:PORTS" is IP only.
	check(t, s, s.Decide(unixCall(analyzer.KindConnect, "/run/x", false), nil), want{})
	check(t, s, s.Decide(unixCall(analyzer.KindConnect, "x", true), nil), want{})
}

func TestHosts(t *testing.T) {
	res := newFakeResolver()
	res.set("proxy.example.org", "93.184.216.34", "::ffff:93.184.216.35", "2606:2800:220:1::1")
	doc := `[network]
connect = ["proxy.example.org:443", "gone.example.org:443"]
deny = ["*"]
`
	s, err := compile(context.Background(), parse(t, doc), testEnv, res, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	v := s.Decide(connectCall("93.184.216.34:443"), nil)
	check(t, s, v, want{allow, "network.connect[0]", RaceFree, ""})
	if w := `t.toml:2:12 network.connect[0] "proxy.example.org:443" -> 93.184.216.34`; v.Rule != w {
		t.Errorf("Rule = %s, want %s", v.Rule, w)
	}
	check(t, s, s.Decide(connectCall("93.184.216.35:443"), nil), want{allow, "network.connect[0]", RaceFree, ""}) // unmapped
	check(t, s, s.Decide(connectCall("[2606:2800:220:1::1]:443"), nil), want{allow, "network.connect[0]", RaceFree, ""})
	check(t, s, s.Decide(connectCall("93.184.216.34:80"), nil), want{deny, "network.deny[0]", RaceFree, ""})
	info := s.Explain()[0]
	if len(info.Addrs) != 3 || info.Addrs[0] != netip.MustParseAddr("93.184.216.34") {
		t.Errorf("Addrs = %v", info.Addrs)
	}
	if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], "gone.example.org") {
		t.Errorf("warnings = %q", w)
	}
	if n := s.Explain()[1].Note; !strings.Contains(n, "unresolved") {
		t.Errorf("unresolved note = %q", n)
	}
	if s.NextRefresh() != t0.Add(RefreshMin) {
		t.Errorf("NextRefresh = %v", s.NextRefresh())
	}
}

func TestHostsDenyMustResolve(t *testing.T) {
	doc := `[network]
deny = ["tracker.example.com:*"]
`
	res := newFakeResolver()
	res.fail("tracker.example.com", errTemporary)
	_, err := compile(context.Background(), parse(t, doc), testEnv, res, func() time.Time { return t0 })
	if err == nil || !strings.Contains(err.Error(), `t.toml:2:9: network.deny[0] "tracker.example.com:*": resolve tracker.example.com`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := compile(context.Background(), parse(t, doc), testEnv, nil, time.Now); err == nil {
		t.Error("a deny host name compiled without a resolver")
	}
	// NXDOMAIN is an answer: the entry matches nothing, with a warning.
	res = newFakeResolver()
	s, err := compile(context.Background(), parse(t, doc), testEnv, res, func() time.Time { return t0 })
	if err != nil || len(s.Warnings()) != 1 {
		t.Fatalf("err = %v, warnings %q", err, s.Warnings())
	}
}

func TestRefresh(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: t0}
	res := newFakeResolver()
	res.set("a.example", "192.0.2.1")
	res.set("d.example", "192.0.2.100")
	doc := `[network]
connect = ["a.example:443"]
deny = ["d.example:*"]
`
	s, err := compile(ctx, parse(t, doc), testEnv, res, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(s *Set, addr string) bool {
		v := s.Decide(connectCall(addr), nil)
		return v.Matched && v.Action == allow
	}
	denied := func(s *Set, addr string) bool {
		v := s.Decide(connectCall(addr), nil)
		return v.Matched && v.Action == deny
	}

	// Not due: the same Set.
	if n, err := s.Refresh(ctx); n != s || err != nil {
		t.Fatalf("refresh before due: %p %v", n, err)
	}
	// Due, same answer: new Set, same version, backed-off schedule.
	clk.Advance(RefreshMin)
	s2, err := s.Refresh(ctx)
	if err != nil || s2 == s || s2.Version() != s.Version() {
		t.Fatalf("same answer: version %d -> %d, err %v", s.Version(), s2.Version(), err)
	}
	if s2.NextRefresh() != clk.Now().Add(2*RefreshMin) {
		t.Errorf("NextRefresh = %v, want +%v", s2.NextRefresh().Sub(clk.Now()), 2*RefreshMin)
	}
	// The answer changes: version bumps, the new address matches, the old
	// one is kept (round robin) while it is within AddrRetention.
	res.set("a.example", "192.0.2.2")
	clk.Advance(2 * RefreshMin)
	s3, err := s2.Refresh(ctx)
	if err != nil || s3.Version() != s2.Version()+1 {
		t.Fatalf("changed answer: version %d -> %d, err %v", s2.Version(), s3.Version(), err)
	}
	if !allowed(s3, "192.0.2.2:443") || !allowed(s3, "192.0.2.1:443") {
		t.Error("new or retained address not allowed")
	}
	if allowed(s, "192.0.2.2:443") {
		t.Error("the old Set changed")
	}
	if s3.NextRefresh() != clk.Now().Add(RefreshMin) {
		t.Errorf("NextRefresh after a change = +%v", s3.NextRefresh().Sub(clk.Now()))
	}
	// After AddrRetention of answers without it, the old address goes.
	for range 40 {
		clk.Advance(RefreshMax)
		if s3, err = s3.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if allowed(s3, "192.0.2.1:443") || !allowed(s3, "192.0.2.2:443") {
		t.Errorf("retention: addrs %v", s3.Explain()[0].Addrs)
	}
	// Lookups fail: the Set keeps working on the last answer...
	res.fail("a.example", errTemporary)
	res.fail("d.example", errTemporary)
	clk.Advance(RefreshMax)
	s4, err := s3.Refresh(ctx)
	if err == nil || !errors.Is(err, errTemporary) {
		t.Fatalf("failed refresh err = %v", err)
	}
	if !allowed(s4, "192.0.2.2:443") || !denied(s4, "192.0.2.100:1") {
		t.Error("addresses dropped on the first failure")
	}
	if s4.NextRefresh() != clk.Now().Add(RefreshMin) {
		t.Errorf("retry after failure = +%v", s4.NextRefresh().Sub(clk.Now()))
	}
	// ...until AddrRetention has passed: the allow fails closed, the deny
	// keeps its addresses.
	for range int(AddrRetention/RefreshMin) + 1 {
		clk.Advance(RefreshMin)
		s4, _ = s4.Refresh(ctx)
	}
	if allowed(s4, "192.0.2.2:443") {
		t.Error("stale allow still matches")
	}
	if !denied(s4, "192.0.2.100:1") {
		t.Error("deny lost its addresses")
	}
	if s4.Version() <= s3.Version() {
		t.Error("version not bumped when addresses went away")
	}
	if n := s4.Explain()[0].Note; !strings.Contains(n, "unresolved") {
		t.Errorf("note = %q", n)
	}
	// DNS is back.
	res.set("a.example", "192.0.2.3")
	clk.Advance(RefreshMin)
	s5, err := s4.Refresh(ctx)
	if err == nil { // d.example still fails
		t.Error("no error for d.example")
	}
	if !allowed(s5, "192.0.2.3:443") || allowed(s5, "192.0.2.2:443") {
		t.Errorf("recovered: addrs %v", s5.Explain()[0].Addrs)
	}
	if res.calls["a.example"] < 10 || !slices.Equal(sortedKeys(res.calls), []string{"a.example", "d.example"}) {
		t.Errorf("lookups: %v", res.calls)
	}
}
