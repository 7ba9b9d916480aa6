package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/analyzer"
)

// fiftyRules is a realistic 50-rule profile: 20 read, 8 write, 4 exec,
// 8 deny, 4 exec rules, 6 network entries.
func fiftyRules() string {
	var b strings.Builder
	q := func(list []string) string { return `["` + strings.Join(list, `", "`) + `"]` }
	read := []string{"/usr/**", "/etc/ssl/**", "/etc/hosts", "/etc/resolv.conf", "/etc/passwd", "/etc/group",
		"/etc/nsswitch.conf", "/etc/ld.so.cache", "/lib/**", "/lib64/**", "/proc/self/**", "/proc/*/status",
		"/sys/devices/system/cpu/**", "/dev/null", "/dev/urandom", "${HOME}/.gitconfig", "${HOME}/.cache/go-build/**",
		"${CWD}/**", "/opt/*/share/**", "/var/lib/dpkg/status"}
	write := []string{"${CWD}/**", "/tmp/**", "${HOME}/.cache/**", "/dev/null", "/dev/tty", "/var/tmp/**",
		"${HOME}/go/pkg/**", "/run/user/*/app/**"}
	exec := []string{"/usr/bin/*", "/bin/*", "/usr/lib/git-core/**", "/usr/local/go/**"}
	deny := []string{"/etc/shadow", "/etc/gshadow", "${HOME}/.ssh/**", "${HOME}/.gnupg/**", "/proc/*/mem",
		"/proc/kcore", "/sys/kernel/**", "/tmp/**/*.key"}
	fmt.Fprintf(&b, "[files]\nread = %s\nwrite = %s\nexec = %s\ndeny = %s\n", q(read), q(write), q(exec), q(deny))
	for _, r := range []string{
		`path = "/usr/bin/git"` + "\n" + `argv = ["git", "clone", "**"]` + "\naction = \"allow\"",
		`path = "/usr/bin/git"` + "\n" + `argv = ["git", "push", "**"]` + "\naction = \"deny\"",
		`path = "/bin/sh"` + "\n" + `parent = ["make"]` + "\naction = \"allow\"",
		`path = "/usr/bin/sudo"` + "\naction = \"kill\"",
	} {
		b.WriteString("[[exec.rule]]\n" + r + "\n")
	}
	b.WriteString(`[network]
connect = ["127.0.0.0/8:*", "[::1]:*", "10.0.0.0/8:443", "unix:/run/*.sock"]
deny = ["*", "169.254.169.254:*"]
`)
	return b.String()
}

func benchSet(b *testing.B) *Set {
	s := mustCompile(b, fiftyRules())
	if n := len(s.infos); n != 50 {
		b.Fatalf("%d rules, want 50", n)
	}
	return s
}

var benchCalls = []struct {
	name string
	call *analyzer.Call
	anc  []Ancestor
}{
	{"open-allow-deep", openCall("/usr/lib/x86_64-linux-gnu/libc.so.6", analyzer.AccessRead), nil},
	{"open-deny", openCall("/home/u/.ssh/id_ed25519", analyzer.AccessRead), nil},
	{"open-rw-cwd", openCall("/home/u/src/pkg/main.go", analyzer.AccessRead|analyzer.AccessWrite), nil},
	{"open-nomatch", openCall("/srv/data/file", analyzer.AccessRead), nil},
	{"exec-argv", execCall("/usr/bin/git", "git", "clone", "https://example.org/r.git"), nil},
	{"exec-parent", execCall("/bin/sh", "sh", "-c", "true"), []Ancestor{{Comm: "make", Exe: "/usr/bin/make"}}},
	{"connect", connectCall("10.1.2.3:443"), nil},
	{"connect-deny", connectCall("169.254.169.254:80"), nil},
}

func BenchmarkDecide(b *testing.B) {
	s := benchSet(b)
	for _, bc := range benchCalls {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Decide(bc.call, bc.anc)
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	p := parse(b, fiftyRules())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(b.Context(), p, testEnv, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecideAllocs(t *testing.T) {
	s := mustCompile(t, fiftyRules())
	for _, bc := range benchCalls {
		v := s.Decide(bc.call, bc.anc)
		if n := testing.AllocsPerRun(200, func() { s.Decide(bc.call, bc.anc) }); n != 0 {
			t.Errorf("%s: %v allocs per Decide", bc.name, n)
		}
		t.Logf("%-16s %v", bc.name, v)
	}
}
