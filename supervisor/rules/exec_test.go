package rules

import (
	"context"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
)

const execProfile = `
[files]
exec = ["/usr/bin/**"]
deny = ["/usr/bin/sudo"]

[[exec.rule]]
path = "/usr/bin/git"
argv = ["git", "clone", "**"]
action = "allow"

[[exec.rule]]
path = "/usr/bin/git"
argv = ["git", "push", "*"]
action = "deny"

[[exec.rule]]
path = "/bin/sh"
argv = ["sh", "-c", "*"]
parent = ["make"]
action = "allow"

[[exec.rule]]
path = "/bin/sh"
action = "deny"

[[exec.rule]]
path = "/usr/bin/*"
parent = ["/usr/bin/ba*", "ssh?"]
action = "kill"

[[exec.rule]]
path = "/opt/tool"
argv = ["tool"]
action = "log"

[[exec.rule]]
path = "/usr/bin/env"
action = "allow"
`

func TestExec(t *testing.T) {
	s := mustCompile(t, execProfile)
	if s.AncestorDepth() != 2 {
		t.Errorf("AncestorDepth = %d, want 2", s.AncestorDepth())
	}
	make := []Ancestor{{Comm: "make", Exe: "/usr/bin/make"}, {Comm: "bash", Exe: "/usr/bin/bash"}}
	fromSSH := []Ancestor{{Comm: "bash", Exe: "/usr/bin/bash"}, {Comm: "sshd", Exe: "/usr/sbin/sshd"}}
	tests := []struct {
		name string
		call *analyzer.Call
		anc  []Ancestor
		want want
	}{
		{"argv tail", execCall("/usr/bin/git", "git", "clone", "https://example.org/r.git", "dir"), nil, want{allow, "exec.rule[0]", Advisory, ""}},
		{"argv tail matches zero", execCall("/usr/bin/git", "git", "clone"), nil, want{allow, "exec.rule[0]", Advisory, ""}},
		{"argv exact length", execCall("/usr/bin/git", "git", "push", "origin"), nil, want{deny, "exec.rule[1]", RaceFree, ""}},
		{"argv too short falls through", execCall("/usr/bin/git", "git", "push"), nil, want{allow, "files.exec[0]", Advisory, ""}},
		{"argv too long falls through", execCall("/usr/bin/git", "git", "push", "origin", "main"), nil, want{allow, "files.exec[0]", Advisory, ""}},
		{"no exec rule, files glob", execCall("/usr/bin/ls", "ls"), nil, want{allow, "files.exec[0]", Advisory, ""}},
		{"files deny beats files exec", execCall("/usr/bin/sudo", "sudo"), nil, want{deny, "files.deny[0]", RaceFree, ""}},
		{"parent chain", execCall("/bin/sh", "sh", "-c", "echo hi"), make, want{allow, "exec.rule[2]", Advisory, ""}},
		{"parent chain missing", execCall("/bin/sh", "sh", "-c", "echo hi"), nil, want{deny, "exec.rule[3]", RaceFree, ""}},
		{"wrong parent", execCall("/bin/sh", "sh", "-c", "echo hi"), fromSSH, want{deny, "exec.rule[3]", RaceFree, ""}},
		{"parent ok, argv not", execCall("/bin/sh", "sh", "x.sh"), make, want{deny, "exec.rule[3]", RaceFree, ""}},
		{"exe glob and comm glob", execCall("/usr/bin/ls", "ls"), fromSSH, want{profiles.ActionKill, "exec.rule[4]", RaceFree, ""}},
		{"literal files deny beats a glob exec rule", execCall("/usr/bin/sudo"), fromSSH, want{deny, "files.deny[0]", RaceFree, ""}},
		{"exact-path exec rule beats the glob one", execCall("/usr/bin/env", "env"), fromSSH, want{allow, "exec.rule[6]", Advisory, ""}},
		{"log", execCall("/opt/tool", "tool"), nil, want{profiles.ActionLog, "exec.rule[5]", Advisory, ""}},
		{"log, argv mismatch", execCall("/opt/tool", "tool", "-x"), nil, want{}},
		{"unmatched", execCall("/opt/other"), nil, want{}},
		{"path cleaned", execCall("/usr/bin/../bin/sudo"), nil, want{deny, "files.deny[0]", RaceFree, ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check(t, s, s.Decide(tc.call, tc.anc), tc.want)
		})
	}
	c := execCall("/usr/bin/git", "git", "clone", "x")
	c.Truncated = true
	check(t, s, s.Decide(c, nil), want{deny, "exec.rule[0]", RaceFree, noteTruncated})
}

func TestExecRulePrecedence(t *testing.T) {
	tests := []struct {
		name  string
		rules string
		argv  []string
		want  string
	}{
		{"exec rule beats files deny at equal path", `[files]
deny = ["/usr/bin/sudo"]
[[exec.rule]]
path = "/usr/bin/sudo"
action = "allow"`, []string{"sudo"}, "exec.rule[0]"},
		{"more specific files deny beats exec rule", `[files]
deny = ["/usr/bin/sudo"]
[[exec.rule]]
path = "/usr/bin/*"
argv = ["sudo", "**"]
action = "allow"`, []string{"sudo"}, "files.deny[0]"},
		{"longer argv wins", `[[exec.rule]]
path = "/bin/x"
argv = ["x", "**"]
action = "deny"
[[exec.rule]]
path = "/bin/x"
argv = ["x", "-v", "**"]
action = "allow"`, []string{"x", "-v"}, "exec.rule[1]"},
		{"fixed length beats tail", `[[exec.rule]]
path = "/bin/x"
argv = ["x", "*", "**"]
action = "deny"
[[exec.rule]]
path = "/bin/x"
argv = ["x", "*"]
action = "allow"`, []string{"x", "-v"}, "exec.rule[1]"},
		{"then parents", `[[exec.rule]]
path = "/bin/x"
parent = ["*"]
action = "allow"
[[exec.rule]]
path = "/bin/x"
parent = ["*", "*"]
action = "deny"`, []string{"x"}, "exec.rule[1]"},
		{"deny at equal", `[[exec.rule]]
path = "/bin/x"
argv = ["x"]
action = "allow"
[[exec.rule]]
path = "/bin/x"
argv = ["?"]
action = "deny"`, []string{"x"}, "exec.rule[1]"},
		{"kill before deny at equal", `[[exec.rule]]
path = "/bin/x"
action = "deny"
[[exec.rule]]
path = "/bin/x"
action = "kill"`, []string{"x"}, "exec.rule[1]"},
		{"empty argv and ** match anything", `[[exec.rule]]
path = "/bin/x"
argv = ["**"]
action = "allow"`, []string{}, "exec.rule[0]"},
	}
	anc := []Ancestor{{Comm: "a"}, {Comm: "b"}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustCompile(t, tc.rules)
			c := execCall("/bin/x", tc.argv...)
			if strings.Contains(tc.rules, "sudo") {
				c.Path = "/usr/bin/sudo"
			}
			if got := s.sourceOf(s.Decide(c, anc)); got != tc.want {
				t.Errorf("decided by %q, want %q", got, tc.want)
			}
		})
	}
}

func TestExecCompileErrors(t *testing.T) {
	_, err := Compile(context.Background(), parse(t, `[[exec.rule]]
path = "/bin/x"
parent = ["bin/make"]
action = "allow"
`), testEnv, nil)
	if err == nil || !strings.Contains(err.Error(), `t.toml:2:8: exec.rule[0] "/bin/x": parent "bin/make"`) {
		t.Errorf("err = %v", err)
	}
	s := mustCompile(t, `[[exec.rule]]
path = "/bin/x"
parent = ["a-very-long-program-name", "${HOME}/bin/*"]
action = "allow"
`)
	if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], `"a-very-long-pro*"`) {
		t.Errorf("warnings = %q", w)
	}
	// ${HOME} in a parent glob is expanded.
	v := s.Decide(execCall("/bin/x"), []Ancestor{{Comm: "a-very-long-pro"}, {Exe: "/home/u/bin/y"}})
	if v.Matched {
		t.Errorf("matched the truncated comm: %v", v)
	}
	s = mustCompile(t, `[[exec.rule]]
path = "/bin/x"
parent = ["*", "${HOME}/bin/*"]
action = "allow"
`)
	if v := s.Decide(execCall("/bin/x"), []Ancestor{{Comm: "a"}, {Exe: "/home/u/bin/y"}}); !v.Matched {
		t.Error("${HOME} parent glob does not match")
	}
}
