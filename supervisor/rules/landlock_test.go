package rules

import (
	"fmt"
	"strings"
	"testing"
)

func TestLandlockPlan(t *testing.T) {
	tests := []struct {
		name      string
		doc       string
		ok        bool
		handled   FSAccess
		rules     []string // "path access exact=..."
		reasons   []string // substrings, in order
		execExact bool
	}{
		{
			name: "full",
			doc: `[supervisor]
default = "deny"
[files]
read  = ["/usr/**", "/etc/hosts", "${CWD}/**"]
write = ["${CWD}/**", "/tmp/**"]
exec  = ["/usr/bin/**", "/usr/lib64/ld-linux-x86-64.so.2"]
deny  = ["/etc/shadow", "/**"]
[[exec.rule]]
path = "/opt/tool"
action = "allow"
`,
			ok: true, handled: FSRead | FSWrite | FSExec, execExact: true,
			rules: []string{
				"/etc/hosts read_file|read_dir exact=read_file|read_dir",
				"/home/u/src " + (FSRead | FSWrite).String() + " exact=none",
				"/opt/tool execute exact=execute",
				"/tmp " + FSWrite.String() + " exact=none",
				"/usr read_file|read_dir exact=none",
				"/usr/bin execute exact=none",
				"/usr/lib64/ld-linux-x86-64.so.2 execute exact=execute",
			},
		},
		{
			name:    "supervisor default allow",
			doc:     "[supervisor]\ndefault = \"allow\"\n[files]\nread = [\"/usr/**\"]\n",
			reasons: []string{"[supervisor] default = allow allows paths no rule matches"},
		},
		{
			name:    "no rules",
			doc:     "[supervisor]\ndefault = \"deny\"\n",
			reasons: []string{"read: no allow rule", "write: no allow rule", "exec: no allow rule"},
		},
		{
			name: "globs are not expressible",
			doc: `[files]
read = ["/usr/**", "/proc/*/status"]
write = ["/tmp/x"]
exec = ["/bin/**"]
`,
			ok: true, handled: FSExec, execExact: true,
			rules: []string{"/bin execute exact=none"},
			reasons: []string{
				`read: not handled: t.toml:2:20 files.read[1] "/proc/*/status" is neither an exact path nor a literal prefix followed by /**`,
				`write: not handled: t.toml:3:10 files.write[0] "/tmp/x" names one path`,
			},
		},
		{
			name: "deny inside an exec grant",
			doc: `[files]
exec = ["/usr/bin/**"]
deny = ["/usr/bin/sudo"]
`,
			ok: true, handled: FSExec,
			rules:   []string{"/usr/bin execute exact=none"},
			reasons: []string{"read: no allow rule", "write: no allow rule", `exec: inexact: t.toml:3:9 files.deny[0] "/usr/bin/sudo" denies inside t.toml:2:9 files.exec[0] "/usr/bin/**"`},
		},
		{
			name: "glob deny inside an exec grant",
			doc: `[files]
exec = ["/usr/bin/**"]
deny = ["/*/bin/sudo"]
`,
			ok: true, handled: FSExec,
			reasons: []string{"read", "write", `exec: inexact: t.toml:3:9 files.deny[0] "/*/bin/sudo" denies`},
		},
		{
			name: "less specific deny around a grant is fine",
			doc: `[files]
exec = ["/usr/bin/**"]
deny = ["/**", "/usr/*"]
`,
			ok: true, handled: FSExec, execExact: true,
			reasons: []string{"read", "write"},
		},
		{
			name: "exec rule with argv",
			doc: `[[exec.rule]]
path = "/usr/bin/git"
argv = ["git", "status"]
action = "allow"
`,
			ok: true, handled: FSExec,
			rules:   []string{"/usr/bin/git execute exact=execute"},
			reasons: []string{"read", "write", `exec: inexact: t.toml:2:8 exec.rule[0] "/usr/bin/git" argv ["git" "status"] has argv or parent conditions`},
		},
		{
			name: "exec rule deny with argv inside a grant",
			doc: `[files]
exec = ["/bin/**"]
[[exec.rule]]
path = "/bin/sh"
argv = ["sh", "-c", "*"]
action = "deny"
`,
			ok: true, handled: FSExec,
			reasons: []string{"read", "write", `exec: inexact: t.toml:4:8 exec.rule[0] "/bin/sh" argv ["sh" "-c" "*"] denies inside`},
		},
		{
			name: "exec rule glob",
			doc: `[[exec.rule]]
path = "/usr/bin/*"
action = "allow"
`,
			reasons: []string{"read", "write", `exec: not handled: t.toml:2:8 exec.rule[0] "/usr/bin/*" is neither`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustCompile(t, tc.doc)
			plan, ok := s.LandlockPlan()
			if ok != tc.ok || plan.Handled != tc.handled {
				t.Errorf("ok=%v handled=%v, want %v %v; reasons %q", ok, plan.Handled, tc.ok, tc.handled, plan.Reasons)
			}
			if tc.rules != nil {
				var got []string
				for _, r := range plan.Rules {
					got = append(got, fmt.Sprintf("%s %s exact=%s", r.Path, r.Access, r.Exact))
				}
				if strings.Join(got, "\n") != strings.Join(tc.rules, "\n") {
					t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.rules, "\n"))
				}
			}
			if len(plan.Reasons) != len(tc.reasons) {
				t.Errorf("reasons %q, want %d", plan.Reasons, len(tc.reasons))
			} else {
				for i, w := range tc.reasons {
					if !strings.Contains(plan.Reasons[i], w) {
						t.Errorf("reason %d = %q, want %q", i, plan.Reasons[i], w)
					}
				}
			}
			if s.execExact != tc.execExact {
				t.Errorf("execExact = %v, want %v", s.execExact, tc.execExact)
			}
		})
	}
}

// TestLandlockExecSafety: exec allows are RaceFree exactly when the plan
// enforces them exactly.
func TestLandlockExecSafety(t *testing.T) {
	exact := mustCompile(t, "[files]\nexec = [\"/usr/bin/**\"]\n")
	inexact := mustCompile(t, "[files]\nexec = [\"/usr/bin/**\"]\ndeny = [\"/usr/bin/sudo\"]\n")
	check(t, exact, exact.Decide(execCall("/usr/bin/ls"), nil), want{allow, "files.exec[0]", RaceFree, ""})
	check(t, inexact, inexact.Decide(execCall("/usr/bin/ls"), nil), want{allow, "files.exec[0]", Advisory, ""})
	check(t, inexact, inexact.Decide(execCall("/usr/bin/sudo"), nil), want{deny, "files.deny[0]", RaceFree, ""})
	if r := exact.Explain()[0]; r.Safety != RaceFree || r.SafetyNote != "enforced by the Landlock plan" {
		t.Errorf("explain: %v", r)
	}
	if r := inexact.Explain()[0]; r.Safety != Advisory {
		t.Errorf("explain: %v", r)
	}
	// Under a supervisor default of allow there is no plan.
	allowDefault := mustCompile(t, "[supervisor]\ndefault = \"allow\"\n[files]\nexec = [\"/usr/bin/**\"]\n")
	check(t, allowDefault, allowDefault.Decide(execCall("/usr/bin/ls"), nil), want{allow, "files.exec[0]", Advisory, ""})
}

func TestFSAccessString(t *testing.T) {
	if s := (FSExecute | FSReadDir | 1<<40).String(); s != "execute|read_dir|0x10000000000" {
		t.Error(s)
	}
	if s := FSAccess(0).String(); s != "none" {
		t.Error(s)
	}
}
