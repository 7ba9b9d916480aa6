package profiles

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden")

func TestMain(m *testing.M) {
	// Keep the host's profile directories out of the tests' lookups.
	os.Setenv("ARCHANGEL_PROFILE_PATH", "")
	os.Setenv("XDG_CONFIG_HOME", "/nonexistent/archangel-test-config")
	os.Exit(m.Run())
}

func TestGoldenErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/bad files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := Load(f)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want an error", f, p)
			}
			if p != nil {
				t.Errorf("Load(%s) returned a profile and an error", f)
			}
			if len(Errors(err)) == 0 {
				t.Errorf("error carries no *Error: %v", err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./profiles -update)", err)
			}
			if got != string(want) {
				t.Errorf("Load(%s) error mismatch\n--- got\n%s--- want\n%s", f, got, want)
			}
		})
	}
}

func TestBuiltinsLoad(t *testing.T) {
	names := BuiltinNames()
	if !slices.Equal(names, []string{"audit", "build", "curl", "default", "git", "nginx", "python3", "redis", "strict"}) {
		t.Errorf("BuiltinNames() = %v", names)
	}
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			p, err := Load(n)
			if err != nil {
				t.Fatalf("Load(%q): %v", n, err)
			}
			if p.Name != n {
				t.Errorf("Name = %q", p.Name)
			}
			data, ok := Builtin(n)
			if !ok || len(data) == 0 {
				t.Fatalf("Builtin(%q) missing", n)
			}
			q, err := Parse(n+".toml", data)
			if err != nil && n != "audit" { // audit extends by name: same result
				t.Fatalf("Parse: %v", err)
			}
			if q != nil && len(q.Policies()) != len(p.Policies()) {
				t.Errorf("Parse and Load disagree")
			}
			checkPolicies(t, p)
		})
	}
}

func TestDefaultProfile(t *testing.T) {
	p, err := Load("default")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		action Action
		errno  Errno
		conds  int
	}{
		{"read", ActionAllow, 0, 0},
		{"openat", ActionAllow, 0, 0},
		{"clone3", ActionAllow, 0, 0},
		{"execve", ActionNotify, 0, 0},
		{"execveat", ActionNotify, 0, 0},
		{"connect", ActionNotify, 0, 0},
		{"sendto", ActionNotify, 0, 1},
		{"sendmsg", ActionNotify, 0, 0},
		{"ptrace", ActionNotify, 0, 0},
		{"process_vm_readv", ActionNotify, 0, 0},
		{"mount", ActionErrno, 1, 0},
		{"bpf", ActionErrno, 1, 0},
		{"keyctl", ActionErrno, 1, 0},
		{"io_uring_setup", ActionErrno, 1, 0},
		{"userfaultfd", ActionErrno, 1, 0},
		{"personality", ActionErrno, 1, 5},
		{"syslog", ActionErrno, 38, 0}, // ENOSYS: the default
		{"lsm_set_self_attr", ActionErrno, 38, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := p.Policy(tc.name)
			if sp.Action != tc.action || sp.Errno != tc.errno || len(sp.Conds) != tc.conds {
				t.Errorf("Policy(%q) = %s %s with %d conds (from %s), want %s %s with %d", tc.name,
					sp.Action, sp.Errno, len(sp.Conds), sp.Source, tc.action, tc.errno, tc.conds)
			}
		})
	}
	if sp := p.Policy("syslog"); sp.Source != "profile.default" {
		t.Errorf("syslog source = %q", sp.Source)
	}
	if p.Supervisor.Default != ActionAllow || p.Analyzer.Budget != 100*time.Microsecond {
		t.Errorf("supervisor/analyzer = %+v %+v", p.Supervisor, p.Analyzer)
	}
	audit, err := Load("audit")
	if err != nil {
		t.Fatal(err)
	}
	if audit.Mode != ModeAudit || p.Mode != ModeEnforce {
		t.Errorf("modes: audit %s, default %s", audit.Mode, p.Mode)
	}
	if !slices.Equal(audit.Sources, []string{"builtin:default", "builtin:audit"}) {
		t.Errorf("audit.Sources = %v", audit.Sources)
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const launcherAllow = `allow = ["@launcher"]`

func TestExtendsOverride(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"base.toml": `
[profile]
description = "base"
default = "deny"
errno = "EACCES"
[syscalls]
` + launcherAllow + `
notify = ["@exec"]
deny = ["mkdir", "mkdirat", "personality"]
[[syscalls.rule]]
names = ["personality"]
action = "allow"
args = [{ index = 0, op = "eq", value = 0 }]
[files]
deny = ["/etc/shadow"]
[supervisor]
default = "deny"
errno = "EACCES"
cache_size = 10
`,
		"derived.toml": `
[profile]
extends = ["base.toml"]
mode = "audit"
[syscalls]
allow = ["mkdir", "mkdirat", "getpid"]
[files]
deny = ["${HOME}/.ssh/**"]
[supervisor]
cache_size = 20
`,
		"personality.toml": `
[profile]
extends = ["derived"]
[[syscalls.rule]]
names = ["personality"]
action = "log"
args = [{ index = 0, op = "eq", value = 8 }]
`,
	})
	t.Setenv("ARCHANGEL_PROFILE_PATH", dir)
	p, err := Load(filepath.Join(dir, "derived.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "derived" || p.Description != "base" || p.Mode != ModeAudit ||
		p.Default != ActionErrno || p.DefaultErrno.String() != "EACCES" {
		t.Errorf("scalars: %+v", p)
	}
	for _, n := range []string{"mkdir", "mkdirat"} {
		sp := p.Policy(n)
		if sp.Action != ActionAllow || !strings.HasSuffix(sp.Pos.File, "derived.toml") {
			t.Errorf("%s: %s from %s", n, sp.Action, sp.Pos)
		}
	}
	if sp := p.Policy("execve"); sp.Action != ActionNotify || !strings.HasSuffix(sp.Pos.File, "base.toml") {
		t.Errorf("execve: %+v", sp)
	}
	for _, r := range p.Rules {
		if slices.Contains(r.Syscalls, "mkdir") && r.Profile != "derived" {
			t.Errorf("mkdir rule from %q still in force", r.Profile)
		}
	}
	if len(p.Files.Deny) != 2 || p.Files.Deny[0].Text != "/etc/shadow" {
		t.Errorf("files.deny = %v", p.Files.Deny)
	}
	if p.Supervisor.Default != ActionErrno || p.Supervisor.DefaultErrno.String() != "EACCES" || p.Supervisor.CacheSize != 20 {
		t.Errorf("supervisor = %+v", p.Supervisor)
	}

	// A conditional rule in a derived profile replaces every base rule for
	// the syscall, unconditional ones included.
	q, err := Load("personality")
	if err != nil {
		t.Fatal(err)
	}
	sp := q.Policy("personality")
	if sp.Source != "profile.default" || len(sp.Conds) != 1 || sp.Conds[0].Action != ActionLog || sp.Conds[0].Profile != "personality" {
		t.Errorf("personality: %+v", sp)
	}
	if !slices.Equal(q.Sources, []string{filepath.Join(dir, "base.toml"), filepath.Join(dir, "derived.toml"), filepath.Join(dir, "personality.toml")}) {
		t.Errorf("Sources = %v", q.Sources)
	}
}

func TestGroupPrecedence(t *testing.T) {
	doc := `
[profile]
default = "deny"
[syscalls]
allow = ["@launcher", "@file-system", "@network-io", "alarm"]
log = ["@basic-io"]
notify = ["@timer"]
kill = ["@mount"]
deny = ["@exec", "chroot"]
`
	p, err := Parse("prec.toml", []byte(doc))
	if err == nil || !strings.Contains(err.Error(), `"execve" is denied`) {
		// @exec denies execve, which the launcher needs: expected.
		t.Fatalf("want a launcher error, got %v", err)
	}
	doc = strings.Replace(doc, `deny = ["@exec", "chroot"]`, `deny = ["chroot"]`+"\nerrno = \"EACCES\"", 1)
	p, err = Parse("prec.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		action Action
		source string
	}{
		{"alarm", ActionAllow, "syscalls.allow"},       // explicit beats @timer notify
		{"setitimer", ActionNotify, "syscalls.notify"}, // notify (@timer) beats the default
		{"openat", ActionAllow, "syscalls.allow"},      //
		{"read", ActionLog, "syscalls.log"},            // log (@basic-io) beats allow (@launcher)
		{"close", ActionLog, "syscalls.log"},           // in @file-system and @basic-io
		{"mount", ActionKill, "syscalls.kill"},         // only in @mount
		{"chroot", ActionErrno, "syscalls.deny"},       // explicit deny beats @mount kill
		{"connect", ActionAllow, "syscalls.allow"},     //
		{"getpid", ActionErrno, "profile.default"},     // not named
	}
	for _, tc := range tests {
		sp := p.Policy(tc.name)
		if sp.Action != tc.action || sp.Source != tc.source {
			t.Errorf("Policy(%q) = %s from %s, want %s from %s", tc.name, sp.Action, sp.Source, tc.action, tc.source)
		}
	}
	if e := p.Policy("chroot").Errno; e.String() != "EACCES" {
		t.Errorf("chroot errno = %s", e)
	}
	// Each syscall appears in at most one unconditional rule.
	seen := map[string]string{}
	for _, r := range p.Rules {
		for _, s := range r.Syscalls {
			if prev, ok := seen[s]; ok && len(r.Args) == 0 {
				t.Errorf("%s in %s and %s", s, prev, r.Source)
			}
			seen[s] = r.Source
		}
	}
}

func TestIOUringImplicitDeny(t *testing.T) {
	p, err := Parse("allow.toml", []byte("[profile]\ndefault = \"allow\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"io_uring_setup", "io_uring_enter", "io_uring_register"} {
		sp := p.Policy(s)
		if sp.Action != ActionErrno || sp.Errno != IOUringErrno || sp.Source != "profile.io_uring" {
			t.Errorf("Policy(%s) = %+v", s, sp)
		}
	}
	p, err = Parse("allow.toml", []byte("[profile]\ndefault = \"allow\"\nio_uring = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sp := p.Policy("io_uring_setup"); sp.Action != ActionAllow {
		t.Errorf("io_uring = true: %+v", sp)
	}
	// The integration tests' profile shape: default allow, a family denied.
	p, err = Parse("it.toml", []byte(`[profile]
default = "allow"
[syscalls]
deny = ["mkdir", "mkdirat"]
errno = "EACCES"
kill = ["uname"]
notify = ["getppid"]
[[syscalls.rule]]
names = ["personality"]
action = "deny"
errno = "EINVAL"
args = [{ index = 0, op = "eq", value = 0 }]
`))
	if err != nil {
		t.Fatal(err)
	}
	checkPolicies(t, p)
}

func TestPolicyUnknownName(t *testing.T) {
	p, err := Load("strict")
	if err != nil {
		t.Fatal(err)
	}
	sp := p.Policy("no_such_call")
	if sp.Nr != -1 || sp.Action != ActionErrno || sp.Source != "profile.default" {
		t.Errorf("Policy(no_such_call) = %+v", sp)
	}
}

// checkPolicies asserts the invariants of Policies on a valid profile.
func checkPolicies(t *testing.T, p *Profile) {
	t.Helper()
	pols := p.Policies()
	names := map[string]bool{}
	for _, r := range p.Rules {
		if r.Action == ActionUnset || len(r.Syscalls) == 0 {
			t.Errorf("rule %+v: unset action or no syscalls", r)
		}
		for _, s := range r.Syscalls {
			names[s] = true
		}
	}
	if len(pols) != len(names) {
		t.Errorf("Policies() has %d entries, rules name %d syscalls", len(pols), len(names))
	}
	for i, sp := range pols {
		if i > 0 && pols[i-1].Nr >= sp.Nr {
			t.Errorf("Policies not sorted by Nr at %d: %d >= %d", i, pols[i-1].Nr, sp.Nr)
		}
		if n, ok := SyscallName(sp.Nr); !ok || n != sp.Name {
			t.Errorf("policy %s has Nr %d (%s)", sp.Name, sp.Nr, n)
		}
		if sp.Action == ActionUnset {
			t.Errorf("policy %s: unset action", sp.Name)
		}
		if (sp.Action == ActionErrno) != (sp.Errno != 0) {
			t.Errorf("policy %s: action %s with errno %d", sp.Name, sp.Action, sp.Errno)
		}
		for _, c := range sp.Conds {
			if len(c.Args) == 0 {
				t.Errorf("policy %s: unconditional rule among Conds", sp.Name)
			}
		}
	}
}

func TestSyscallTable(t *testing.T) {
	for name, nr := range map[string]int{"read": 0, "write": 1, "open": 2, "execve": 59, "openat2": 437,
		"futex_waitv": 449, "set_mempolicy_home_node": 450, "cachestat": 451, "mseal": 462, "file_setattr": 469} {
		if got, ok := SyscallNr(name); !ok || got != nr {
			t.Errorf("SyscallNr(%q) = %d, %v; want %d", name, got, ok, nr)
		}
		if got, ok := SyscallName(nr); !ok || got != name {
			t.Errorf("SyscallName(%d) = %q, %v", nr, got, ok)
		}
	}
	if _, ok := SyscallNr("mmap2"); ok {
		t.Error("mmap2 is not an x86-64 syscall")
	}
	if _, ok := SyscallName(400); ok {
		t.Error("400 is a gap on x86-64")
	}
	names := SyscallNames()
	if !slices.IsSorted(names) || len(names) != 382 {
		t.Errorf("SyscallNames: %d names, sorted %v", len(names), slices.IsSorted(names))
	}
}

func TestGroups(t *testing.T) {
	exec, ok := Group("@exec")
	if !ok || !slices.Equal(exec, []string{"execve", "execveat"}) {
		t.Errorf("@exec = %v", exec)
	}
	if l, _ := Group("launcher"); !slices.Equal(l, LauncherSyscalls) {
		t.Errorf("@launcher = %v, LauncherSyscalls = %v", l, LauncherSyscalls)
	}
	ss, _ := Group("@system-service")
	for _, want := range []string{"read", "openat", "clone3", "execve", "io_uring_setup"} {
		if !slices.Contains(ss, want) {
			t.Errorf("@system-service lacks %s", want)
		}
	}
	if slices.Contains(ss, "mmap2") {
		t.Error("@system-service kept a non-x86-64 name")
	}
	for _, g := range GroupNames() {
		m, ok := Group(g)
		if !ok {
			t.Errorf("Group(%q) not found", g)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(m)))) != len(m) {
			t.Errorf("Group(%q) has duplicates", g)
		}
		for _, s := range m {
			if _, ok := SyscallNr(s); !ok {
				t.Errorf("Group(%q) has unknown %q", g, s)
			}
		}
	}
	// archangel's groups must not clash with systemd's (parseGroups panics).
	for _, g := range []string{"@exec", "@open", "@connect", "@io-uring", "@launcher", "@known", "@mount"} {
		if !slices.Contains(GroupNames(), g) {
			t.Errorf("GroupNames lacks %s", g)
		}
	}
	for _, f := range aliasFamilies {
		for _, s := range f {
			if _, ok := SyscallNr(s); !ok {
				t.Errorf("family member %q unknown", s)
			}
		}
	}
}

func TestEnums(t *testing.T) {
	for _, s := range []string{"allow", "deny", "kill", "log", "notify"} {
		var a Action
		if err := a.UnmarshalText([]byte(s)); err != nil || a.String() != s {
			t.Errorf("Action %q: %v %s", s, err, a)
		}
	}
	var a Action
	if err := a.UnmarshalText([]byte("errno")); err != nil || a != ActionErrno {
		t.Errorf("errno alias: %v", err)
	}
	if err := a.UnmarshalText([]byte("alow")); err == nil || !strings.Contains(err.Error(), `did you mean "allow"`) {
		t.Errorf("bad action: %v", err)
	}
	for _, s := range []string{"eq", "ne", "lt", "le", "gt", "ge", "masked_eq"} {
		var o Op
		if err := o.UnmarshalText([]byte(s)); err != nil || o.String() != s {
			t.Errorf("Op %q: %v", s, err)
		}
	}
	var m Mode
	if err := m.UnmarshalText([]byte("audit")); err != nil || m != ModeAudit {
		t.Errorf("mode: %v", err)
	}
	for text, want := range map[string]Errno{"EPERM": 1, "ENOSYS": 38, "EACCES": 13, "EWOULDBLOCK": 11, "ENOTSUP": 95, "42": 42, "EHWPOISON": 133} {
		var e Errno
		if err := e.UnmarshalText([]byte(text)); err != nil || e != want {
			t.Errorf("Errno %q = %d, %v; want %d", text, e, err, want)
		}
	}
	if Errno(11).String() != "EAGAIN" || Errno(95).String() != "EOPNOTSUPP" || Errno(4000).String() != "4000" {
		t.Errorf("canonical names: %s %s %s", Errno(11), Errno(95), Errno(4000))
	}
	for _, bad := range []string{"0", "4096", "EPREM", "eperm", ""} {
		var e Errno
		if err := e.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("Errno %q accepted", bad)
		}
	}
	if e, ok := ErrnoByName("EPERM"); !ok || e != 1 {
		t.Errorf("ErrnoByName(EPERM) = %d %v", e, ok)
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in     string
		prefix string
		host   string
		any    bool
		lo, hi uint16
		unix   string
	}{
		{"127.0.0.0/8:*", "127.0.0.0/8", "", false, 0, 65535, ""},
		{"[::1]:443", "::1/128", "", false, 443, 443, ""},
		{"[fd00::]/8:22", "fd00::/8", "", false, 22, 22, ""},
		{"10.0.0.1:8000-8100", "10.0.0.1/32", "", false, 8000, 8100, ""},
		{"proxy.example.org:443", "", "proxy.example.org", false, 443, 443, ""},
		{"*", "", "", true, 0, 65535, ""},
		{"*:53", "", "", true, 53, 53, ""},
		{"unix:/run/x.sock", "", "", false, 0, 0, "/run/x.sock"},
		{"unix:@abstract", "", "", false, 0, 0, "@abstract"},
	}
	for _, tc := range tests {
		ep, err := ParseEndpoint(tc.in)
		if err != nil {
			t.Errorf("ParseEndpoint(%q): %v", tc.in, err)
			continue
		}
		pfx := ""
		if ep.Prefix.IsValid() {
			pfx = ep.Prefix.String()
		}
		if pfx != tc.prefix || ep.Host != tc.host || ep.Any != tc.any || ep.PortLo != tc.lo || ep.PortHi != tc.hi || ep.Unix != tc.unix {
			t.Errorf("ParseEndpoint(%q) = %+v", tc.in, ep)
		}
	}
}

func TestCheckGlob(t *testing.T) {
	for _, good := range []string{"/usr/**", "${CWD}/**", "${HOME}/.ssh/**", "${TMPDIR}", "/proc/*/mem", "/a/[a-z]?/b"} {
		if err := checkGlob(good); err != nil {
			t.Errorf("checkGlob(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"usr/**", "${PWD}/x", "/a/[b", "/a**", "${CWD}x", "/a/${HOME}", ""} {
		if err := checkGlob(bad); err == nil {
			t.Errorf("checkGlob(%q) accepted", bad)
		}
	}
}

func TestPosIndex(t *testing.T) {
	src := "# c\n[profile]\nname = \"x\"\n[syscalls]\nallow = [\n  \"a\", # c\n  'b',\n]\n[[syscalls.rule]]\nargs = [{ index = 0, op = \"eq\" }, { index = 1 }]\n[[syscalls.rule]]\nnames.x = \"\"\"q\"\"\"\n"
	ix := buildPosIndex(src)
	for path, want := range map[string]string{
		"profile":                        "f:2:1",
		"profile.name":                   "f:3:8",
		"syscalls.allow":                 "f:5:9",
		"syscalls.allow[0]":              "f:6:3",
		"syscalls.allow[1]":              "f:7:3",
		"syscalls.rule[0]":               "f:9:1",
		"syscalls.rule[0].args[1]":       "f:10:35",
		"syscalls.rule[0].args[1].index": "f:10:45",
		"syscalls.rule[1]":               "f:11:1",
		"syscalls.rule[1].names.x":       "f:12:11",
	} {
		if got := ix.val("f", path).String(); got != want {
			t.Errorf("val(%s) = %s, want %s", path, got, want)
		}
	}
	if got := ix.key("f", "syscalls.rule[0].args[1].index").String(); got != "f:10:37" {
		t.Errorf("key(index) = %s", got)
	}
}

func TestLoadNotFound(t *testing.T) {
	_, err := Load("defualt")
	if err == nil || !strings.Contains(err.Error(), `did you mean "default"?`) {
		t.Errorf("Load(defualt) = %v", err)
	}
	_, err = Load("testdata/none.toml")
	if err == nil {
		t.Error("missing file loaded")
	}
}

func TestErrorsAs(t *testing.T) {
	_, err := Load("testdata/bad/unknown-syscall.toml")
	var pe *Error
	if !errors.As(err, &pe) || pe.Pos.Line != 5 || pe.Pos.Col != 11 {
		t.Errorf("errors.As: %v %+v", err, pe)
	}
}

// TestDeps keeps the package free of cgo and of the kernel-facing code.
func TestDeps(t *testing.T) {
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	cmd := exec.CommandContext(t.Context(), gobin, "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "libseccomp") || strings.HasSuffix(dep, "/internal/kernel") || dep == "C" || dep == "runtime/cgo" ||
			(strings.HasPrefix(dep, "github.com/archangel-sandbox/archangel/") && dep != "github.com/archangel-sandbox/archangel/profiles") {
			t.Errorf("profiles depends on %s", dep)
		}
	}
}
