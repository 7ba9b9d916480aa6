package rules

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPathGlob(t *testing.T) {
	tests := []struct {
		pat  string
		yes  []string
		no   []string
		spec spec
	}{
		{pat: "/", yes: []string{"/"}, no: []string{"/a", "", "a"}},
		{pat: "/**", yes: []string{"/", "/a", "/a/b/c"}, no: []string{"", "a"}, spec: spec{wild: 1}},
		{pat: "/**/**", yes: []string{"/", "/a", "/a/b"}, spec: spec{wild: 2}},
		{pat: "/usr/**", yes: []string{"/usr", "/usr/lib", "/usr/lib/x/y"}, no: []string{"/", "/usrx", "/us", "/usr2/lib", "/etc/usr"}, spec: spec{1, 3, 1}},
		{pat: "/usr/", yes: []string{"/usr"}, no: []string{"/usr/lib", "/"}, spec: spec{1, 3, 0}},
		{pat: "//usr//lib/", yes: []string{"/usr/lib"}, no: []string{"/usr"}},
		{pat: "/usr/lib/../bin/*", yes: []string{"/usr/bin/ls"}, no: []string{"/usr/lib/ls", "/usr/bin"}},
		{pat: "/a/**/b", yes: []string{"/a/b", "/a/x/b", "/a/x/y/b", "/a/b/b"}, no: []string{"/a", "/b", "/a/b/c", "/a/xb", "/ab"}, spec: spec{2, 2, 1}},
		{pat: "/**/x", yes: []string{"/x", "/y/x", "/y/z/x", "/x/x"}, no: []string{"/", "/x/y", "/xx"}},
		{pat: "/a/**/b/**/c", yes: []string{"/a/b/c", "/a/1/b/2/c", "/a/b/b/c", "/a/b/1/b/2/c"}, no: []string{"/a/c", "/a/b/c/b", "/a/b"}},
		{pat: "/a/**/**/b", yes: []string{"/a/b", "/a/1/2/3/b"}, no: []string{"/a"}},
		{pat: "/a/*/c", yes: []string{"/a/b/c", "/a/.x/c"}, no: []string{"/a/c", "/a/b/x/c", "/a/b/c/d"}, spec: spec{2, 2, 1}},
		{pat: "/home/*", yes: []string{"/home/.ssh", "/home/u"}, no: []string{"/home", "/home/u/x"}},
		{pat: "/a*", yes: []string{"/a", "/abc"}, no: []string{"/ab/c", "/b"}, spec: spec{0, 1, 1}},
		{pat: "/a?", yes: []string{"/ab", "/aé"}, no: []string{"/a", "/abc", "/a/"}},
		{pat: "/[a-c]x", yes: []string{"/bx"}, no: []string{"/dx", "/x"}},
		{pat: "/[^a]x", yes: []string{"/bx"}, no: []string{"/ax"}},
		{pat: `/a\*b`, yes: []string{"/a*b"}, no: []string{"/axb", `/a\*b`}, spec: spec{1, 3, 0}},
		{pat: "/proc/*/mem", yes: []string{"/proc/1/mem", "/proc/self/mem"}, no: []string{"/proc/mem", "/proc/1/2/mem"}, spec: spec{2, 7, 1}},
		{pat: "/lib/*.so*", yes: []string{"/lib/libc.so.6"}, no: []string{"/lib/libc.a"}, spec: spec{1, 6, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.pat, func(t *testing.T) {
			g, err := compilePathGlob(tc.pat)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.yes {
				if !g.match(p) {
					t.Errorf("%q does not match %q", tc.pat, p)
				}
				if !refMatch(g.elems, p) {
					t.Errorf("reference: %q does not match %q", tc.pat, p)
				}
			}
			for _, p := range tc.no {
				if g.match(p) {
					t.Errorf("%q matches %q", tc.pat, p)
				}
			}
			if tc.spec != (spec{}) && g.spec != tc.spec {
				t.Errorf("spec = %+v, want %+v", g.spec, tc.spec)
			}
		})
	}
}

func TestPathGlobShape(t *testing.T) {
	tests := []struct {
		pat     string
		shape   shape
		literal string
	}{
		{"/", shapeExact, "/"},
		{"/etc/hosts", shapeExact, "/etc/hosts"},
		{`/a\*b`, shapeExact, "/a*b"},
		{"/**", shapeSubtree, "/"},
		{"/usr/**", shapeSubtree, "/usr"},
		{"/usr/**/lib", shapeOther, "/usr"},
		{"/usr/*", shapeOther, "/usr"},
		{"/usr/**/**", shapeOther, "/usr"},
	}
	for _, tc := range tests {
		g, err := compilePathGlob(tc.pat)
		if err != nil {
			t.Fatal(err)
		}
		if g.shape != tc.shape || g.literal() != tc.literal {
			t.Errorf("%q: shape %d literal %q, want %d %q", tc.pat, g.shape, g.literal(), tc.shape, tc.literal)
		}
	}
}

func TestPathGlobErrors(t *testing.T) {
	for _, pat := range []string{"usr/**", "", "/a[", "/[]", "/a\\", "/[a-]", "/[z"} {
		if _, err := compilePathGlob(pat); err == nil {
			t.Errorf("%q compiled", pat)
		}
	}
}

func TestMayMatchBelow(t *testing.T) {
	tests := []struct {
		pat, dir string
		want     bool
	}{
		{"/usr/bin/sudo", "/usr", true},
		{"/usr/bin/sudo", "/usr/bin/sudo", true},
		{"/usr/bin/sudo", "/etc", false},
		{"/usr", "/usr/bin", false}, // an ancestor only
		{"/*/bin/sudo", "/usr/bin", true},
		{"/*/sbin/x", "/usr/bin", false},
		{"/**/sudo", "/usr", true},
		{"/", "/", true},
		{"/x", "/", true},
	}
	for _, tc := range tests {
		g, _ := compilePathGlob(tc.pat)
		if got := g.mayMatchBelow(tc.dir); got != tc.want {
			t.Errorf("%q below %q = %v, want %v", tc.pat, tc.dir, got, tc.want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true},
		{"*", "https://example.org/x", true}, // '*' crosses '/' in argv and comm
		{"", "", true},
		{"", "a", false},
		{"a*b*c", "abxbc", true},
		{"a*b*c", "abxbd", false},
		{"?", "é", true},
		{"??", "é", false},
		{"[é]", "é", true},
		{`\[x]`, "[x]", true},
		{`[\]]`, "]", true},
		{"--*", "--output=x", true},
		{"[", "[", false},   // invalid: matches nothing
		{`a\`, `a\`, false}, // invalid
		{"*[", "x", false},
	}
	for _, tc := range tests {
		if got := globMatch(tc.pat, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pat, tc.s, got, tc.want)
		}
	}
}

func TestEscapeGlob(t *testing.T) {
	for _, s := range []string{"/home/plain", "/home/we[ird", "/a*b?c\\d", "/x]y"} {
		g, err := compilePathGlob(escapeGlob(s))
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if !g.match(s) || g.shape != shapeExact || g.literal() != s {
			t.Errorf("escaped %q does not match itself exactly (glob %q)", s, g.text)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/":            "/",
		"/a/b":         "/a/b",
		"/a//b":        "/a/b",
		"/a/./b":       "/a/b",
		"/a/x/../b":    "/a/b",
		"/a/b/":        "/a/b",
		"/..":          "/",
		"rel/path":     "rel/path",
		"":             "",
		"/etc/shadow/": "/etc/shadow",
	} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { cleanPath("/usr/lib/x86_64-linux-gnu/libc.so.6") }); n != 0 {
		t.Errorf("cleanPath of a clean path allocates %v times", n)
	}
}

// refMatch is an exponential, obviously correct matcher for the fuzz
// target and the tables.
func refMatch(elems []elem, p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	var comps []string
	if p != "/" {
		comps = strings.Split(p[1:], "/")
	}
	var rec func(e []elem, c []string) bool
	rec = func(e []elem, c []string) bool {
		if len(e) == 0 {
			return len(c) == 0
		}
		if e[0].dstar {
			for i := 0; i <= len(c); i++ {
				if rec(e[1:], c[i:]) {
					return true
				}
			}
			return false
		}
		return len(c) > 0 && e[0].match(c[0]) && rec(e[1:], c[1:])
	}
	return rec(elems, comps)
}

func FuzzPathGlob(f *testing.F) {
	for _, s := range [][2]string{
		{"/usr/**", "/usr/lib"}, {"/a/**/b/**/c", "/a/b/x/b/c"}, {"/**/x", "/x/x/x"}, {"/[a-c]*/?", "/b/é"},
		{`/a\*`, "/a*"}, {"/", "/"}, {"/**", "/"}, {"/*/**/*", "/a/b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, p string) {
		if len(pat) > 64 || len(p) > 64 {
			return
		}
		g, err := compilePathGlob(pat)
		if err != nil {
			return
		}
		got := g.match(p)
		if got != g.match(p) {
			t.Fatal("not deterministic")
		}
		if isClean(p) {
			if want := refMatch(g.elems, p); got != want {
				t.Fatalf("glob %q (%q) on %q = %v, reference says %v", pat, g.text, p, got, want)
			}
		}
		g.mayMatchBelow(path.Clean("/" + p))
	})
}

// FuzzGlobMatch checks the element matcher against path.Match where both
// apply: valid UTF-8 and no '/'.
func FuzzGlobMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"*", "abc"}, {"a*b?c", "axxbyc"}, {"[a-z]*", "q"}, {"[^a-z]", "Q"}, {`\*`, "*"}, {"[", "["},
		{"*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}, {"[\\]]", "]"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, s string) {
		if len(pat) > 256 || len(s) > 256 {
			return // quadratic by design; real patterns and words are short
		}
		got := globMatch(pat, s)
		if got != globMatch(pat, s) {
			t.Fatal("not deterministic")
		}
		_, _, cerr := checkGlob(pat)
		if cerr == nil && !got && !strings.ContainsAny(pat, "[\\") {
			// Without classes and escapes, a pattern matches its own
			// literal reading with each wildcard replaced by text.
			lit := strings.NewReplacer("*", "", "?", "x").Replace(pat)
			if !globMatch(pat, lit) {
				t.Fatalf("%q does not match %q", pat, lit)
			}
		}
		if strings.Contains(pat+s, "/") || !utf8.ValidString(pat) || !utf8.ValidString(s) {
			return
		}
		want, err := path.Match(pat, s)
		if cerr == nil && err != nil {
			t.Fatalf("checkGlob accepts %q, path.Match: %v", pat, err)
		}
		if err == nil && cerr != nil && want {
			t.Fatalf("checkGlob rejects %q (%v), path.Match matches %q", pat, cerr, s)
		}
		if cerr == nil && got != want {
			t.Fatalf("globMatch(%q, %q) = %v, path.Match says %v", pat, s, got, want)
		}
	})
}
