package filter

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/profiles"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func parse(t testing.TB, name, src string) *profiles.Profile {
	t.Helper()
	p, err := profiles.Parse(name, []byte(src))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return p
}

// boundaries returns the values around v where a comparison can flip,
// including the 32-bit halves' edges the program compares separately.
func boundaries(v uint64) []uint64 {
	out := []uint64{0, 1, math.MaxUint64, math.MaxUint32, math.MaxUint32 + 1, v, v - 1, v + 1,
		v ^ 1<<32, v + 1<<32, v - 1<<32, v &^ 0xffffffff, v | 0xffffffff}
	return out
}

// check runs every interesting seccomp_data through the program and the
// evaluator and reports the first disagreement with the disassembly.
func check(t *testing.T, p *profiles.Profile, mode profiles.Mode) *Program {
	t.Helper()
	opts := Options{Arch: ArchAMD64, Mode: mode}
	prog, err := Compile(p, opts)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	var values []uint64
	var nrs = map[int32]bool{}
	for _, r := range p.Rules {
		for _, name := range r.Syscalls {
			if nr, ok := profiles.SyscallNr(name); ok {
				nrs[int32(nr)] = true
				nrs[int32(nr)-1] = true
				nrs[int32(nr)+1] = true
			}
		}
		for _, c := range r.Args {
			values = append(values, boundaries(c.Value)...)
			values = append(values, boundaries(c.Value|^c.Mask)...)
		}
	}
	values = append(values, boundaries(0)...)
	for _, nr := range []int32{0, 1, 59, 101, 335, 450, 469, 470, 999, 0x3fffffff, 0x40000000, 0x40000001, -1} {
		nrs[nr] = true
	}
	// For each conditional rule: start from arguments that satisfy all of
	// its conditions, then move one argument through the boundaries, so
	// that a wrong comparison is not hidden by another condition failing.
	for _, r := range p.Rules {
		if len(r.Args) == 0 {
			continue
		}
		var base [6]uint64
		for _, c := range r.Args {
			base[c.Index] = satisfying(c)
		}
		for _, name := range r.Syscalls {
			nr, _ := profiles.SyscallNr(name)
			for _, c := range r.Args {
				for _, v := range append(boundaries(c.Value), boundaries(c.Value|^c.Mask)...) {
					d := Data{Nr: int32(nr), Arch: AuditArchX8664, Args: base}
					d.Args[c.Index] = v
					compare(t, p, prog, opts, d)
				}
			}
		}
	}
	for nr := range nrs {
		for argIdx := 0; argIdx < 6; argIdx++ {
			for _, v := range values {
				d := Data{Nr: nr, Arch: AuditArchX8664}
				d.Args[argIdx] = v
				compare(t, p, prog, opts, d)
			}
		}
	}
	for _, arch := range []uint32{0x40000003 /* i386 */, 0, 0xc00000b7 /* aarch64 */} {
		compare(t, p, prog, opts, Data{Nr: 1, Arch: arch})
	}
	return prog
}

var evaluators = map[*profiles.Profile]*Evaluator{}

func evaluator(p *profiles.Profile) *Evaluator {
	if e, ok := evaluators[p]; ok {
		return e
	}
	e := NewEvaluator(p)
	evaluators[p] = e
	return e
}

// satisfying returns a value for which c holds.
func satisfying(c profiles.ArgCond) uint64 {
	switch c.Op {
	case profiles.OpNe, profiles.OpGt:
		return c.Value + 1
	case profiles.OpLt:
		return c.Value - 1
	}
	return c.Value
}

func compare(t *testing.T, p *profiles.Profile, prog *Program, opts Options, d Data) {
	t.Helper()
	ret, err := prog.Run(d)
	if err != nil {
		t.Fatalf("run %+v: %v", d, err)
	}
	gotA, gotE := Decode(ret)
	want := evaluator(p).Eval(opts, d)
	wantE := want.Errno
	if want.Action != profiles.ActionErrno {
		wantE = 0
	}
	if gotA != want.Action || gotE != wantE {
		var b bytes.Buffer
		_ = prog.WriteText(&b)
		t.Fatalf("data %+v: program says %v %v, evaluator says %v %v (%s at %s)\n%s", d, gotA, gotE, want.Action, wantE, want.Source, want.Pos, b.String())
	}
}

const condProfile = `
[profile]
name = "conds"
default = "allow"

[syscalls]
deny = ["mkdirat", "mkdir"]
errno = "EACCES"
kill = ["uname"]
notify = ["@connect", "getppid"]
log = ["getpgrp"]

[[syscalls.rule]]
names = ["sendto"]
action = "allow"
args = [{ index = 4, op = "eq", value = 0 }]

[[syscalls.rule]]
names = ["personality"]
action = "deny"
errno = "EINVAL"
args = [{ index = 0, op = "eq", value = 0xffffffff }]

[[syscalls.rule]]
names = ["personality"]
action = "kill"
args = [{ index = 0, op = "eq", value = 0x100000000 }]

[[syscalls.rule]]
names = ["socket"]
action = "deny"
args = [{ index = 0, op = "gt", value = 0x1_0000_0010 }, { index = 1, op = "le", value = 7 }]

[[syscalls.rule]]
names = ["ioctl"]
action = "deny"
errno = "ENOTTY"
args = [{ index = 1, op = "masked_eq", mask = "0xffff0000ffff0000", value = 0x1234000054320000 }]

[[syscalls.rule]]
names = ["prctl"]
action = "deny"
args = [{ index = 0, op = "lt", value = 0x2_0000_0003 }, { index = 2, op = "ge", value = 0xfffffffe }, { index = 3, op = "ne", value = 5 }]
`

func TestProgramMatchesEvaluator(t *testing.T) {
	cases := map[string]*profiles.Profile{"conds": parse(t, "conds.toml", condProfile)}
	for _, name := range profiles.BuiltinNames() {
		p, err := profiles.Load(name)
		if err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
		cases[name] = p
	}
	defaults := map[string]string{"allow": "", "deny": "errno = \"ENOSYS\"", "kill": "", "log": "", "notify": ""}
	for def, extra := range defaults {
		src := strings.Replace(condProfile, `default = "allow"`, fmt.Sprintf("default = %q\n%s\nio_uring = false", def, extra), 1)
		if def == "notify" || def == "kill" || def == "deny" {
			src = strings.Replace(src, "[syscalls]", "[syscalls]\nallow = [\"@launcher\"]", 1)
		}
		cases["conds-default-"+def] = parse(t, "conds-"+def+".toml", src)
	}
	for name, p := range cases {
		for _, mode := range []profiles.Mode{profiles.ModeEnforce, profiles.ModeAudit} {
			t.Run(name+"/"+mode.String(), func(t *testing.T) {
				check(t, p, mode)
			})
		}
	}
}

func TestForeignArchitecturesAreKilled(t *testing.T) {
	p := parse(t, "allow.toml", "[profile]\ndefault = \"allow\"\n")
	prog, err := Compile(p, Options{Arch: ArchAMD64})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []Data{
		{Nr: 1, Arch: 0x40000003},                  // i386 via int 0x80
		{Nr: 0x40000000 | 1, Arch: AuditArchX8664}, // x32 write
		{Nr: 0x40000000 | 59, Arch: AuditArchX8664},
	} {
		ret, _ := prog.Run(d)
		if ret != RetKillProcess {
			t.Errorf("%+v: ret %#x, want KILL_PROCESS", d, ret)
		}
	}
	if ret, _ := prog.Run(Data{Nr: 1, Arch: AuditArchX8664}); ret != RetAllow {
		t.Errorf("native write: ret %#x, want ALLOW", ret)
	}
}

func TestAuditModeTurnsDenyAndKillIntoNotify(t *testing.T) {
	p := parse(t, "conds.toml", condProfile)
	prog, err := Compile(p, Options{Arch: ArchAMD64, Mode: profiles.ModeAudit})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mkdirat", "uname"} {
		nr, _ := profiles.SyscallNr(name)
		if ret, _ := prog.Run(Data{Nr: int32(nr), Arch: AuditArchX8664}); ret != RetUserNotif {
			t.Errorf("%s in audit mode: ret %#x, want USER_NOTIF", name, ret)
		}
	}
}

func TestDeterministic(t *testing.T) {
	p, err := profiles.Load("default")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Compile(p, Options{Arch: ArchAMD64})
	for range 5 {
		p2, _ := profiles.Load("default")
		b, _ := Compile(p2, Options{Arch: ArchAMD64})
		if !bytes.Equal(a.Bytes(), b.Bytes()) || a.Hash != b.Hash {
			t.Fatal("two compilations of the same profile differ")
		}
	}
}

func TestLongJumpsUseTrampolines(t *testing.T) {
	// Many distinct conditional blocks make the search jump far.
	var b strings.Builder
	b.WriteString("[profile]\ndefault = \"allow\"\n")
	n := 0
	for _, name := range profiles.SyscallNames() {
		nr, _ := profiles.SyscallNr(name)
		if nr < 20 || nr > 300 || n >= 120 || slices.Contains(profiles.LauncherSyscalls, name) {
			continue
		}
		n++
		fmt.Fprintf(&b, "[[syscalls.rule]]\nnames = [%q]\naction = \"deny\"\nargs = [{ index = 0, op = \"eq\", value = %d }, { index = 1, op = \"gt\", value = %d }]\n", name, nr, nr*3)
	}
	p, err := profiles.Parse("many.toml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	prog := check(t, p, profiles.ModeEnforce)
	if len(prog.Insns) < 300 {
		t.Fatalf("only %d instructions: the test does not exercise long jumps", len(prog.Insns))
	}
}

func TestNotifiedList(t *testing.T) {
	p := parse(t, "conds.toml", condProfile)
	prog, err := Compile(p, Options{Arch: ArchAMD64})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]bool{}
	for _, name := range []string{"connect", "sendto", "sendmsg", "sendmmsg", "getppid"} {
		nr, _ := profiles.SyscallNr(name)
		want[nr] = true
	}
	if len(prog.Notified) != len(want) {
		t.Fatalf("Notified = %v, want the @connect family and getppid", prog.Notified)
	}
	for _, nr := range prog.Notified {
		if !want[nr] {
			t.Fatalf("Notified = %v, want the @connect family and getppid", prog.Notified)
		}
	}
}

func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.toml")
	if len(files) == 0 {
		t.Fatal("no testdata/*.toml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := profiles.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			prog, err := Compile(p, Options{Arch: ArchAMD64, Mode: p.Mode})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := prog.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(f, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./filter -update)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Fatalf("disassembly differs from %s (go test ./filter -update rewrites it):\n%s", golden, b.String())
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	p, err := profiles.Load("default")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Compile(p, Options{Arch: ArchAMD64}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEval(b *testing.B) {
	p, _ := profiles.Load("default")
	d := Data{Nr: 44, Arch: AuditArchX8664, Args: [6]uint64{3, 0, 0, 0, 1234}}
	e := NewEvaluator(p)
	for b.Loop() {
		e.Eval(Options{}, d)
	}
}

func BenchmarkRun(b *testing.B) {
	p, _ := profiles.Load("default")
	prog, _ := Compile(p, Options{Arch: ArchAMD64})
	d := Data{Nr: 44, Arch: AuditArchX8664, Args: [6]uint64{3, 0, 0, 0, 1234}}
	for b.Loop() {
		if _, err := prog.Run(d); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNotifyAllowed: the calls named in Options.NotifyAllowed reach the
// supervisor where the profile allows them (by a rule, a conditional rule
// or its default); where it denies them the kernel still does; every
// other call keeps its verdict.
func TestNotifyAllowed(t *testing.T) {
	p := parse(t, "n.toml", `[profile]
default = "allow"
[syscalls]
deny = ["setgid"]
allow = ["@launcher", "setuid"]
[[syscalls.rule]]
names = ["capset"]
action = "deny"
args = [{ index = 0, op = "eq", value = 0 }]
`)
	plain, err := Compile(p, Options{Arch: ArchAMD64, Mode: profiles.ModeEnforce})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Compile(p, Options{Arch: ArchAMD64, Mode: profiles.ModeEnforce, NotifyAllowed: []string{"setuid", "setgid", "setresuid", "capset", "nosuchcall"}})
	if err != nil {
		t.Fatal(err)
	}
	run := func(prog *Program, name string, arg0 uint64) uint32 {
		nr, _ := profiles.SyscallNr(name)
		ret, err := prog.Run(Data{Nr: int32(nr), Arch: AuditArchX8664, Args: [6]uint64{arg0}})
		if err != nil {
			t.Fatal(err)
		}
		return ret
	}
	for _, tc := range []struct {
		name string
		arg0 uint64
		want uint32
	}{
		{"setuid", 0, RetUserNotif},    // explicit allow
		{"setresuid", 0, RetUserNotif}, // allowed by the default
		{"capset", 1, RetUserNotif},    // the conditional rule does not match: default allow
		{"capset", 0, RetErrno | 1},    // the conditional deny stays in the kernel
		{"setgid", 0, RetErrno | 1},    // denied: stays denied
		{"getpid", 0, RetAllow},        // not named
	} {
		if got := run(prog, tc.name, tc.arg0); got != tc.want {
			t.Errorf("%s(%d) = %#x, want %#x", tc.name, tc.arg0, got, tc.want)
		}
	}
	if got := run(plain, "setuid", 0); got != RetAllow {
		t.Errorf("without NotifyAllowed setuid = %#x, want ALLOW", got)
	}
	if !slices.Contains(prog.Notified, 105) || !slices.Contains(prog.Notified, 117) {
		t.Errorf("Notified = %v, want setuid (105) and setresuid (117)", prog.Notified)
	}
}
