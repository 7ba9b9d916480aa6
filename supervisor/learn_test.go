package supervisor

import (
	"context"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor/rules"
)

func TestLearnedProfileLoadsAndKeepsSecretsOut(t *testing.T) {
	l := NewLearner()
	for _, p := range []string{"/etc/hostname", "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/nsswitch.conf"} {
		l.observe("openat", &analyzer.Call{Kind: analyzer.KindOpen, Access: analyzer.AccessRead, Path: p})
	}
	l.observe("execve", &analyzer.Call{Kind: analyzer.KindExec, Access: analyzer.AccessExec, Path: "/bin/sh"})
	l.observe("getpid", nil)
	res := l.Result(LearnEnv{CWD: "/work", HOME: "/home/u", TMPDIR: "/tmp"})
	if !res.Read["/etc/*"] {
		t.Fatalf("five files in /etc did not collapse to /etc/*: %v", res.Read)
	}
	text := res.WriteProfile(ProfileHeader{Name: "t", Status: "test"})
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
	if !strings.Contains(string(text), `"getpid"`) || !strings.Contains(string(text), `notify = ["@exec", "@open"]`) {
		t.Errorf("learned syscalls missing:\n%s", text)
	}
}
