package rules

import (
	"context"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
)

const filesProfile = `
[files]
read  = ["/usr/**", "${HOME}/**", "${HOME}/.ssh/known_hosts", "/etc/*", "/proc/**", "/"]
write = ["${CWD}/**", "/tmp/**", "${HOME}/.cache/**"]
exec  = ["/usr/bin/*"]
deny  = ["/etc/shadow", "${HOME}/.ssh/**", "/proc/*/mem", "/tmp/**", "${HOME}/.cache/secret"]
`

func TestFiles(t *testing.T) {
	s := mustCompile(t, filesProfile)
	const (
		R  = analyzer.AccessRead
		W  = analyzer.AccessWrite
		RW = R | W
	)
	tests := []struct {
		name string
		call *analyzer.Call
		want want
	}{
		{"subtree read", openCall("/usr/lib/libc.so.6", R), want{allow, "files.read[0]", RaceFree, ""}},
		{"subtree root itself", openCall("/usr", R), want{allow, "files.read[0]", RaceFree, ""}},
		{"exact root", openCall("/", R), want{allow, "files.read[5]", RaceFree, ""}},
		{"stat is advisory", pathCall(analyzer.KindStat, "/usr/lib"), want{allow, "files.read[0]", Advisory, ""}},
		{"chdir reads", pathCall(analyzer.KindChdir, "/usr"), want{allow, "files.read[0]", Advisory, ""}},
		{"literal beats star", openCall("/etc/shadow", R), want{deny, "files.deny[0]", RaceFree, ""}},
		{"star allows", openCall("/etc/passwd", R), want{allow, "files.read[3]", RaceFree, ""}},
		{"star is one element", openCall("/etc/ssl/certs", R), want{}},
		{"deny subtree beats home", openCall("/home/u/.ssh/id_ed25519", R), want{deny, "files.deny[1]", RaceFree, ""}},
		{"deny covers the dir", openCall("/home/u/.ssh", R), want{deny, "files.deny[1]", RaceFree, ""}},
		{"exact allow beats deny subtree", openCall("/home/u/.ssh/known_hosts", R), want{allow, "files.read[2]", RaceFree, ""}},
		{"deny applies to write", openCall("/home/u/.ssh/known_hosts", W), want{deny, "files.deny[1]", RaceFree, ""}},
		{"proc mem", openCall("/proc/1/mem", R), want{deny, "files.deny[2]", RaceFree, ""}},
		{"proc status", openCall("/proc/1/status", R), want{allow, "files.read[4]", RaceFree, ""}},
		{"deny beats allow at equal specificity", openCall("/tmp/x", W), want{deny, "files.deny[3]", RaceFree, ""}},
		{"read and write both allowed, weakest named", openCall("/home/u/src/main.go", RW), want{allow, "files.read[1]", RaceFree, ""}},
		{"write without a write rule", openCall("/usr/lib/x", RW), want{deny, "files.read[0]", RaceFree, "no files.write rule matches the path; denied"}},
		{"write only, nothing matches for it", openCall("/usr/lib/x", W), want{}},
		{"nothing matches", openCall("/srv/data", R), want{}},
		{"create needs write", pathCall(analyzer.KindCreate, "/home/u/src/new"), want{allow, "files.write[0]", Advisory, ""}},
		{"delete needs write", pathCall(analyzer.KindDelete, "/usr/lib/x"), want{}},
		{"attr deny", pathCall(analyzer.KindAttr, "/etc/shadow"), want{deny, "files.deny[0]", RaceFree, ""}},
		{"unclean path is cleaned", openCall("/etc//./x/../shadow/", R), want{deny, "files.deny[0]", RaceFree, ""}},
		{"relative path matches nothing", openCall("etc/shadow", R), want{}},
		{"empty path matches nothing", openCall("", R), want{}},
		{"exec bit on open uses exec rules", openCall("/usr/bin/ls", analyzer.AccessExec), want{allow, "files.exec[0]", RaceFree, ""}},
		{"deeper literal deny in write subtree", openCall("/home/u/.cache/secret", W), want{deny, "files.deny[4]", RaceFree, ""}},
		{"write subtree", openCall("/home/u/.cache/x", W), want{allow, "files.write[2]", RaceFree, ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check(t, s, s.Decide(tc.call, nil), tc.want)
		})
	}
}

func TestRename(t *testing.T) {
	s := mustCompile(t, filesProfile)
	rename := func(from, to string) *analyzer.Call {
		return &analyzer.Call{Name: "renameat2", Kind: analyzer.KindRename, Access: analyzer.AccessWrite, Path: from, Path2: to}
	}
	tests := []struct {
		name string
		call *analyzer.Call
		want want
	}{
		{"both writable", rename("/home/u/src/a", "/home/u/src/b"), want{allow, "files.write[0]", Advisory, ""}},
		{"weakest named", rename("/home/u/.cache/a", "/home/u/src/b"), want{allow, "files.write[0]", Advisory, ""}},
		{"weakest named, other order", rename("/home/u/src/a", "/home/u/.cache/b"), want{allow, "files.write[0]", Advisory, ""}},
		{"destination has no rule", rename("/home/u/src/a", "/usr/lib/b"), want{deny, "files.write[0]", RaceFree, "no files.write rule matches the second path; denied"}},
		{"destination denied", rename("/home/u/src/a", "/home/u/.ssh/authorized_keys"), want{deny, "files.deny[1]", RaceFree, ""}},
		{"hard link of a denied source", rename("/etc/shadow", "/home/u/src/x"), want{deny, "files.deny[0]", RaceFree, ""}},
		{"neither matches", rename("/srv/a", "/srv/b"), want{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check(t, s, s.Decide(tc.call, nil), tc.want)
		})
	}
}

func TestTruncated(t *testing.T) {
	s := mustCompile(t, filesProfile)
	c := openCall("/usr/lib/x", analyzer.AccessRead)
	c.Truncated = true
	check(t, s, s.Decide(c, nil), want{deny, "files.read[0]", RaceFree, noteTruncated})
	c = openCall("/etc/shadow", analyzer.AccessRead)
	c.Truncated = true
	check(t, s, s.Decide(c, nil), want{deny, "files.deny[0]", RaceFree, ""})
}

func TestOtherKinds(t *testing.T) {
	s := mustCompile(t, filesProfile)
	check(t, s, s.Decide(&analyzer.Call{Kind: analyzer.KindOther, Path: "/etc/shadow"}, nil), want{})
	check(t, s, s.Decide(&analyzer.Call{Kind: analyzer.Kind(99)}, nil), want{})
	check(t, s, s.Decide(&analyzer.Call{Kind: analyzer.KindConnect}, nil), want{})
}

func TestVerdictRuleText(t *testing.T) {
	s := mustCompile(t, filesProfile)
	v := s.Decide(openCall("/home/u/.ssh/id_rsa", analyzer.AccessRead), nil)
	if w := `t.toml:6:25 files.deny[1] "${HOME}/.ssh/**"`; v.Rule != w {
		t.Errorf("Rule = %s, want %s", v.Rule, w)
	}
	if w := `deny EACCES by t.toml:6:25 files.deny[1] "${HOME}/.ssh/**" (race-free)`; v.String() != w {
		t.Errorf("String = %s, want %s", v.String(), w)
	}
	if s.Decide(openCall("/srv", analyzer.AccessRead), nil).String() != "no rule" {
		t.Error("unmatched verdict String")
	}
}

// TestPrecedenceOrder checks each tie-breaker in turn.
func TestPrecedenceOrder(t *testing.T) {
	tests := []struct {
		name  string
		files string
		path  string
		want  string
	}{
		{"more literal elements", `read = ["/a/*/c/**"]` + "\n" + `deny = ["/a/**"]`, "/a/b/c/d", "files.read[0]"},
		{"then more literal characters", `read = ["/a/bb*"]` + "\n" + `deny = ["/a/b*"]`, "/a/bbb", "files.read[0]"},
		{"then fewer wildcards", `read = ["/a/b*"]` + "\n" + `deny = ["/a/*b*"]`, "/a/bb", "files.read[0]"},
		{"then deny", `read = ["/a/*"]` + "\n" + `deny = ["/a/?"]`, "/a/b", "files.deny[0]"},
		{"deny at equal, written after", `read = ["/a/b"]` + "\n" + `deny = ["/a/b"]`, "/a/b", "files.deny[0]"},
		{"first written among equal allows", `read = ["/a/*", "/a/?"]`, "/a/b", "files.read[0]"},
		{"** counts as a wildcard", `read = ["/a/**"]` + "\n" + `deny = ["/a/*"]`, "/a/b", "files.deny[0]"},
		{"/a/** vs /a/**/b", `read = ["/a/**/b"]` + "\n" + `deny = ["/a/**"]`, "/a/x/b", "files.read[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustCompile(t, "[files]\n"+tc.files)
			v := s.Decide(openCall(tc.path, analyzer.AccessRead), nil)
			if got := s.sourceOf(v); got != tc.want {
				t.Errorf("decided by %q, want %q", got, tc.want)
			}
		})
	}
}

func TestExpansion(t *testing.T) {
	doc := `[files]
read = ["${CWD}", "${HOME}/**", "${TMPDIR}/x/**"]
`
	tests := []struct {
		name string
		env  Env
		yes  []string
		no   []string
		err  string
	}{
		{name: "plain", env: Env{CWD: "/w", HOME: "/home/u", TMPDIR: "/var/tmp"},
			yes: []string{"/w", "/home/u/a", "/var/tmp/x/y"}, no: []string{"/w/a", "/tmp/x/y"}},
		{name: "TMPDIR defaults to /tmp", env: Env{CWD: "/w", HOME: "/h"}, yes: []string{"/tmp/x"}},
		{name: "values are cleaned", env: Env{CWD: "/w/", HOME: "/h//u/."}, yes: []string{"/w", "/h/u/a"}},
		{name: "glob characters in values are literal", env: Env{CWD: "/w*", HOME: "/home/we[ird"},
			yes: []string{"/w*", "/home/we[ird/a"}, no: []string{"/wx", "/home/wei/a"}},
		{name: "HOME unset", env: Env{CWD: "/w"}, err: `t.toml:2:19: files.read[1] "${HOME}/**": ${HOME} is not set`},
		{name: "CWD relative", env: Env{CWD: "w", HOME: "/h"}, err: `t.toml:2:9: files.read[0] "${CWD}": ${CWD} = "w" is not an absolute path`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compile(context.Background(), parse(t, doc), tc.env, nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.yes {
				if !s.Decide(openCall(p, analyzer.AccessRead), nil).Matched {
					t.Errorf("%s not matched", p)
				}
			}
			for _, p := range tc.no {
				if s.Decide(openCall(p, analyzer.AccessRead), nil).Matched {
					t.Errorf("%s matched", p)
				}
			}
		})
	}
}

func TestCompileErrorsJoined(t *testing.T) {
	doc := `[files]
read = ["${HOME}/a", "${CWD}/b"]
[[exec.rule]]
path = "${HOME}/bin/x"
action = "allow"
`
	_, err := Compile(context.Background(), parse(t, doc), Env{}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{`t.toml:2:9: files.read[0]`, `t.toml:2:22: files.read[1]`, `t.toml:4:8: exec.rule[0]`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

func TestExplain(t *testing.T) {
	s := mustCompile(t, filesProfile+`
[[exec.rule]]
path = "/usr/bin/git"
argv = ["git", "**"]
action = "allow"
[network]
connect = ["127.0.0.1:80"]
deny = ["*"]
`)
	infos := s.Explain()
	var got []string
	for _, r := range infos {
		got = append(got, r.String())
	}
	wantPrefix := []string{
		`t.toml:3:10 files.read[0] "/usr/**" allow race-free (open is emulated; advisory for stat, readlink, chdir)`,
		`t.toml:3:21 files.read[1] "${HOME}/**" (/home/u/**) allow race-free`,
	}
	for i, w := range wantPrefix {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("Explain[%d] = %s\nwant prefix %s", i, got[i], w)
		}
	}
	last := infos[len(infos)-1]
	if last.Kind != KindNetDeny || last.Action != profiles.ActionErrno || last.Safety != RaceFree || last.Index != len(infos)-1 {
		t.Errorf("last rule: %+v", last)
	}
	for i, r := range infos {
		if r.Index != i || r.Source == "" || r.Pos.Line == 0 {
			t.Errorf("rule %d: %+v", i, r)
		}
	}
	er := infos[len(infos)-3]
	if er.Kind != KindExecRule || er.Safety != Advisory {
		t.Errorf("exec rule with argv: %+v", er)
	}
	infos[0].Text = "changed"
	if s.Explain()[0].Text == "changed" {
		t.Error("Explain returns shared storage")
	}
}
