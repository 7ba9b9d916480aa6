package supervisor

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor/rules"
)

func TestLearnedProfileLoadsAndKeepsSecretsOut(t *testing.T) {
	l := NewLearner()
	for _, p := range []string{"/etc/hostname", "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/nsswitch.conf"} {
		l.observe("openat", [6]uint64{}, &analyzer.Call{Kind: analyzer.KindOpen, Access: analyzer.AccessRead, Path: p})
	}
	l.observe("execve", [6]uint64{}, &analyzer.Call{Kind: analyzer.KindExec, Access: analyzer.AccessExec, Path: "/bin/sh"})
	l.observe("getpid", [6]uint64{}, nil)
	l.observe("socket", [6]uint64{1, 1}, nil)
	l.observe("socket", [6]uint64{2, 1}, nil)
	res := l.Result(LearnEnv{CWD: "/work", HOME: "/home/u", TMPDIR: "/tmp"})
	if !res.Read["/etc/*"] {
		t.Fatalf("five files in /etc did not collapse to /etc/*: %v", res.Read)
	}
	l.observe("bind", [6]uint64{}, &analyzer.Call{Kind: analyzer.KindBind, Name: "bind", Addr: &analyzer.SockAddr{Family: 2, Addr: netip.MustParseAddrPort("127.0.0.1:0")}})
	l.observe("connect", [6]uint64{}, &analyzer.Call{Kind: analyzer.KindConnect, Name: "connect", Addr: &analyzer.SockAddr{Family: 2, Addr: netip.MustParseAddrPort("127.0.0.1:45565")}})
	res = l.Result(LearnEnv{CWD: "/work", HOME: "/home/u", TMPDIR: "/tmp"})
	if !res.Bind["127.0.0.1:0"] || !res.Connect["127.0.0.1:32768-60999"] || !res.Advisory["bind"] {
		t.Errorf("network learned as bind %v connect %v advisory %v", res.Bind, res.Connect, res.Advisory)
	}
	// A command with newlines and quotes stays one comment line.
	text := res.WriteProfile(ProfileHeader{Name: "t", Status: "test", Command: []string{"python3", "-c", "import os\nprint(\"x\")"}})
	p, err := profiles.Parse("t.toml", text)
	if err != nil {
		t.Fatalf("learned profile does not load: %v\n%s", err, text)
	}
	set, err := rules.Compile(context.Background(), p, rules.Env{CWD: "/work", HOME: "/home/u", TMPDIR: "/tmp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]profiles.Action{"/etc/passwd": profiles.ActionAllow, "/etc/shadow": profiles.ActionErrno, "/etc/gshadow": profiles.ActionErrno} {
		v := set.Decide(&analyzer.Call{Kind: analyzer.KindOpen, Access: analyzer.AccessRead, Path: path}, nil)
		if !v.Matched || v.Action != want {
			t.Errorf("%s: %+v, want %v", path, v, want)
		}
	}
	// socket: AF_UNIX and AF_INET only.
	ev := filterEvaluator(p)
	for domain, want := range map[uint64]profiles.Action{1: profiles.ActionAllow, 2: profiles.ActionAllow, 10: profiles.ActionErrno, 16: profiles.ActionErrno} {
		if got := ev(41, [6]uint64{domain, 1}); got != want {
			t.Errorf("socket(%d): %v, want %v", domain, got, want)
		}
	}
	if !strings.Contains(string(text), `"getpid"`) || !strings.Contains(string(text), `notify = ["@exec", "@open", "@connect", "bind"]`) {
		t.Errorf("learned syscalls missing:\n%s", text)
	}
}

func filterEvaluator(p *profiles.Profile) func(nr int32, args [6]uint64) profiles.Action {
	e := filter.NewEvaluator(p)
	return func(nr int32, args [6]uint64) profiles.Action {
		return e.Eval(filter.Options{Arch: filter.ArchAMD64}, filter.Data{Nr: nr, Arch: filter.AuditArchX8664, Args: args}).Action
	}
}
