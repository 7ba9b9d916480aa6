package patterns

import (
	"errors"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor/rules"
)

const okPattern = `[[pattern]]
name = "p"
risk = 0.5
verdict = "log"
window = "5s"

  [[pattern.step]]
  syscalls = ["connect"]
  capture = "s"
  from = "arg0"

  [[pattern.step]]
  syscalls = ["dup2"]
  fd = "$s"
`

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // each a line of the error, in order
	}{
		{"bad syscall", strings.Replace(okPattern, `syscalls = ["connect"]`, `syscalls = ["connect", "opn"]`, 1),
			[]string{`t.toml:8:26: unknown syscall "opn"`}},
		{"bad group", strings.Replace(okPattern, `syscalls = ["dup2"]`, `syscalls = ["@nope"]`, 1),
			[]string{`t.toml:13:15: unknown syscall group "@nope"`}},
		{"unknown step key", strings.Replace(okPattern, `  fd = "$s"`, "  fd = \"$s\"\n  colour = \"red\"", 1),
			[]string{`t.toml:15:3: unknown key "pattern[0].step[1].colour"`}},
		{"unknown pattern key", strings.Replace(okPattern, `risk = 0.5`, "risk = 0.5\nseverity = 3", 1),
			[]string{`t.toml:4:1: unknown key "pattern[0].severity"`}},
		{"unknown top key", "[profile]\nname = \"x\"\n" + okPattern,
			[]string{`t.toml:1:1: unknown key "profile"`}},
		{"bad glob", strings.Replace(okPattern, `syscalls = ["dup2"]`, "syscalls = [\"dup2\"]\n  paths = [\n    \"/ok/**\",\n    \"/a/[b\",\n  ]", 1),
			[]string{`t.toml:16:5: paths "/a/[b": bad glob syntax in element "[b"`}},
		{"relative glob", strings.Replace(okPattern, `syscalls = ["dup2"]`, `exe = ["bin/sh"]`, 1),
			[]string{`t.toml:13:10: exe "bin/sh": not an absolute path`}},
		{"bad argv glob", strings.Replace(okPattern, `syscalls = ["dup2"]`, `argv = ["sh", "\\"]`, 1),
			[]string{`t.toml:13:17: argv "\\": bad glob syntax`}},
		{"bad duration", strings.Replace(okPattern, `window = "5s"`, `window = "5 minutes"`, 1),
			[]string{`t.toml:5:1: bad window "5 minutes"`}},
		{"negative duration", strings.Replace(okPattern, `window = "5s"`, `window = "-5s"`, 1),
			[]string{`t.toml:5:1: window -5s is outside (0, 24h0m0s]`}},
		{"no window", strings.Replace(okPattern, "window = \"5s\"\n", "", 1),
			[]string{`t.toml:1:1: pattern "p" has several events but no window`}},
		{"unknown capture", strings.Replace(okPattern, `fd = "$s"`, `fd = "$sock"`, 1),
			[]string{`t.toml:14:3: unknown capture "$sock"`}},
		{"capture used before bound", "[[pattern]]\nname = \"p\"\nrisk = 0\nverdict = \"log\"\nwindow = \"1s\"\n[[pattern.step]]\nfd = \"$s\"\ncapture = \"s\"\nfrom = \"arg0\"\n[[pattern.step]]\n",
			[]string{`t.toml:7:1: unknown capture "$s"`}},
		{"path capture as fd", strings.Replace(okPattern, `from = "arg0"`, `from = "path"`, 1),
			[]string{`t.toml:14:3: capture "$s" holds a path, not a number`}},
		{"capture without from", strings.Replace(okPattern, `  from = "arg0"`+"\n", "", 1),
			[]string{`t.toml:9:3: capture "s" without from`}},
		{"bad from", strings.Replace(okPattern, `from = "arg0"`, `from = "arg6"`, 1),
			[]string{`t.toml:10:3: from "arg6": want arg0..arg5, ret or path`}},
		{"risk out of range", strings.Replace(okPattern, `risk = 0.5`, `risk = 1.5`, 1),
			[]string{`t.toml:3:1: risk 1.5 is outside 0..1`}},
		{"verdict allow", strings.Replace(okPattern, `verdict = "log"`, `verdict = "allow"`, 1),
			[]string{`t.toml:4:1: verdict "allow": want deny, kill or log`}},
		{"bad scope", strings.Replace(okPattern, `verdict = "log"`, "verdict = \"log\"\nscope = \"all\"", 1),
			[]string{`t.toml:5:1: unknown scope "all" (want process, tree or sandbox)`}},
		{"wrong type", strings.Replace(okPattern, `syscalls = ["dup2"]`, `count = "5"`, 1),
			[]string{`t.toml:13:3: pattern[0].step[1].count must be an integer, not a string`}},
		{"bad count", strings.Replace(okPattern, `syscalls = ["dup2"]`, `count = 0`, 1),
			[]string{`t.toml:13:3: count 0 is outside 1..1000`}},
		{"bad arg op", strings.Replace(okPattern, `fd = "$s"`, `args = [{ index = 1, op = "like", value = 1 }]`, 1),
			[]string{`t.toml:14:24: unknown op "like"`}},
		{"arg index", strings.Replace(okPattern, `fd = "$s"`, `args = [{ index = 7, value = 1 }]`, 1),
			[]string{`t.toml:14:11: args entry needs index = 0..5`}},
		{"arg too wide", strings.Replace(okPattern, `fd = "$s"`, `args = [{ index = 1, value = 0x1_0000_0000 }]`, 1),
			[]string{`t.toml:14:24: value 4294967296 does not fit in 32 bits`}},
		{"bad addr", strings.Replace(okPattern, `syscalls = ["connect"]`, `addr = ["10.0.0.0/33"]`, 1),
			[]string{`t.toml:8:11: bad addr "10.0.0.0/33"`}},
		{"home unset", strings.Replace(okPattern, `syscalls = ["dup2"]`, `paths = ["${HOME}/.ssh/**"]`, 1),
			[]string{`t.toml:13:12: paths "${HOME}/.ssh/**": ${HOME} is not set (patterns.Env.HOME)`}},
		{"other variable", strings.Replace(okPattern, `syscalls = ["dup2"]`, `paths = ["${CWD}/x"]`, 1),
			[]string{`t.toml:13:12: paths "${CWD}/x": only ${HOME} is known, and only at the start`}},
		{"duplicate name", okPattern + "\n" + okPattern,
			[]string{`t.toml:17:1: pattern "p" is defined twice (first at t.toml:1:1)`}},
		{"no steps", "[[pattern]]\nname = \"x\"\nrisk = 1\nverdict = \"deny\"\n",
			[]string{`t.toml:1:1: pattern "x" has no steps`}},
		{"missing fields", "[[pattern]]\n[[pattern.step]]\nsyscalls = [\"read\"]\n",
			[]string{`t.toml:1:1: pattern has no name`, `t.toml:1:1: pattern "" has no risk`, `t.toml:1:1: pattern "" has no verdict`}},
		{"pattern table not array", "[pattern]\nname = \"x\"\n",
			[]string{`t.toml:1:1: pattern must be an array of tables`}},
		{"invalid toml", "[[pattern]]\nname = \"x\"\nrisk = \n",
			[]string{`t.toml:3:`, `invalid TOML`}},
		{"several problems", strings.Replace(strings.Replace(okPattern, `window = "5s"`, `window = "soon"`, 1), `"dup2"`, `"dupe2"`, 1),
			[]string{`t.toml:5:1: bad window "soon"`, `t.toml:13:15: unknown syscall "dupe2"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Load("t.toml", []byte(tc.text), Env{})
			if err == nil {
				t.Fatalf("no error; %d patterns", len(e.patterns))
			}
			if e != nil {
				t.Fatal("engine and error")
			}
			msg := err.Error()
			at := 0
			for _, w := range tc.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error\n%s\nlacks (in order) %q", msg, w)
				}
				at += i + len(w)
			}
			var pe *profiles.Error
			if !errors.As(err, &pe) || pe.Pos.File != "t.toml" {
				t.Errorf("not a *profiles.Error with the file: %#v", err)
			}
		})
	}
}

func TestLoadOK(t *testing.T) {
	text := okPattern + `
[[pattern]]
name = "all-keys"
description = "every step key once"
risk = 1
verdict = "kill"
scope = "tree"
window = "1h"

  [[pattern.step]]
  name = "first"
  kinds = ["open"]
  paths = ["${HOME}/x/**", '/a\[1\]']
  path_pid = "self"
  exe = ["/usr/bin/*"]
  not_exe = ["/usr/bin/ssh"]
  argv = ["a", "**"]
  access = ["read", "write"]
  denied = false
  flags = 0o100
  args = [{ index = 2, op = "masked_eq", mask = 3, value = [1, 2] }, { index = 0, op = "lt", value = -1 }]
  count = 2
  capture = "f"
  from = "path"

  [[pattern.step]]
  addr = ["any", "unix", "ip", "10.0.0.0/8", "::1", "::ffff:10.0.0.0/104"]
  path = "$f"
  same_process = true
`
	e, err := Load("t.toml", []byte(text), Env{HOME: "/home/we[ird"})
	if err != nil {
		t.Fatal(err)
	}
	ps := e.Patterns()
	if len(ps) != 2 || ps[1].Name != "all-keys" || ps[1].Scope != ScopeTree || ps[1].Pos.Line != 16 || ps[1].Steps[1] != "step 2" {
		t.Fatalf("%+v", ps)
	}
	if g := e.patterns[1].steps[0].paths[0]; !g.Match("/home/we[ird/x/y") || g.Match("/home/wei/x/y") {
		t.Errorf("${HOME} not literal: %q", g.String())
	}
	if g := e.patterns[1].steps[0].paths[1]; !g.Match("/a[1]") {
		t.Errorf("escape: %q", g.String())
	}
	if p := e.patterns[1].steps[1].addr.prefixes; len(p) != 3 || p[2].String() != "10.0.0.0/8" {
		t.Errorf("prefixes %v", p)
	}
}

func TestPosIndex(t *testing.T) {
	src := "# c\n[[pattern]]\nname = \"a\" # x\n  [[pattern.step]]\n  paths = [ \"/x\", # one\n    '/y' ]\n[[pattern]]\n  [[pattern.step]]\n  [[pattern.step]]\n  \"args\" = [{ index = 1, value = \"\"\"v\"\"\" }]\n"
	ix := buildPosIndex(src)
	for path, want := range map[string]string{
		"pattern[0]":                       "2:1",
		"pattern[0].name":                  "3:1",
		"pattern[0].step[0]":               "4:3",
		"pattern[0].step[0].paths[1]":      "6:5",
		"pattern[1].step[1]":               "9:3",
		"pattern[1].step[1].args[0].value": "10:26",
	} {
		p := lookupPos(ix, "f", path)
		if got := p.String(); got != "f:"+want {
			t.Errorf("%s at %s, want %s", path, got, want)
		}
	}
}

func TestGlobs(t *testing.T) {
	for _, tc := range []struct {
		glob, path string
		want       bool
	}{
		{"/**/bin/sh", "/bin/sh", true},
		{"/**/bin/sh", "/usr/local/bin/sh", true},
		{"/**/bin/sh", "/bin/shx", false},
		{"/proc/*/environ", "/proc/1/environ", true},
		{"/proc/*/environ", "/proc/1/task/1/environ", false},
		{"/home/*/.ssh/**", "/home/u/.ssh", true},
		{"/home/*/.ssh/**", "/home/u/.sshx/id", false},
		{"/memfd:*", "/memfd:x (deleted)", true},
		{"/", "/", true},
		{"/a/**", "a/b", false},
	} {
		g, err := rules.CompileGlob(tc.glob)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.Match(tc.path); got != tc.want {
			t.Errorf("%s ~ %s = %v", tc.glob, tc.path, got)
		}
	}
	if !argvMatch([]string{"python*", "-c", "**"}, []string{"python3", "-c", "x", "y"}) || argvMatch([]string{"sh"}, []string{"sh", "-i"}) {
		t.Error("argv")
	}
}
