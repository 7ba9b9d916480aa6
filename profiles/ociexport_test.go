package profiles_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/profiles"
)

func parse(t *testing.T, doc string) *profiles.Profile {
	t.Helper()
	p, err := profiles.Parse(filepath.Join(t.TempDir(), "p.toml"), []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sameVerdicts compares two profiles' kernel verdicts at every syscall
// number with the given argument vectors.
func sameVerdicts(t *testing.T, a, b *profiles.Profile, argSets ...[6]uint64) {
	t.Helper()
	ea, eb := filter.NewEvaluator(a), filter.NewEvaluator(b)
	opts := filter.Options{Arch: filter.ArchAMD64}
	for nr := int32(0); nr <= 470; nr++ {
		for _, args := range append(argSets, [6]uint64{}) {
			d := filter.Data{Nr: nr, Arch: filter.AuditArchX8664, Args: args}
			va, vb := ea.Eval(opts, d), eb.Eval(opts, d)
			if va.Action != vb.Action || va.Errno != vb.Errno {
				name, _ := profiles.SyscallName(int(nr))
				t.Errorf("nr %d %s %#x: %s %s vs %s %s", nr, name, args, va.Action, va.Errno, vb.Action, vb.Errno)
			}
		}
	}
}

func TestExportOCI(t *testing.T) {
	p := parse(t, `[profile]
default = "deny"
[syscalls]
allow = ["@launcher", "getpid"]
notify = ["sendto", "connect", "sendmsg", "sendmmsg"]
kill = ["ptrace"]
[[syscalls.rule]]
names = ["sendto"]
action = "allow"
args = [{ index = 4, op = "eq", value = 0 }]
[[syscalls.rule]]
names = ["clone"]
action = "allow"
args = [{ index = 0, op = "masked_eq", mask = 0x7e020000, value = 0 }]
`)
	sc, warnings, err := profiles.ExportOCI(p, profiles.OCIOptions{ListenerPath: "/run/agent.sock"})
	if err != nil || len(warnings) > 0 {
		t.Fatal(err, warnings)
	}
	got, _ := json.Marshal(sc.Syscalls)
	want := `[{"names":["read","write","rt_sigprocmask","rt_sigreturn","getpid","execve","exit","exit_group"],"action":"SCMP_ACT_ALLOW"},` +
		`{"names":["connect","sendmsg","sendmmsg"],"action":"SCMP_ACT_NOTIFY"},` +
		`{"names":["sendto"],"action":"SCMP_ACT_ALLOW","args":[{"index":4,"value":0,"op":"SCMP_CMP_EQ"}]},` +
		`{"names":["sendto"],"action":"SCMP_ACT_NOTIFY","args":[{"index":4,"value":0,"op":"SCMP_CMP_NE"}]},` +
		`{"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"op":"SCMP_CMP_MASKED_EQ"}]},` +
		`{"names":["ptrace"],"action":"SCMP_ACT_KILL_PROCESS"}]`
	if string(got) != want {
		t.Errorf("syscalls:\n got %s\nwant %s", got, want)
	}
	if sc.DefaultAction != "SCMP_ACT_ERRNO" || *sc.DefaultErrnoRet != 1 || !slices.Equal(sc.Architectures, []string{"SCMP_ARCH_X86_64"}) {
		t.Errorf("header: %+v", sc)
	}

	// Import of the export decides alike (NOTIFY -> notify).
	data, _ := json.Marshal(sc)
	im, err := profiles.ImportOCI(data, profiles.ImportOptions{File: "x.json"})
	if err != nil {
		t.Fatal(err)
	}
	sameVerdicts(t, p, im.Profile, [6]uint64{0, 0, 0, 0, 1}, [6]uint64{0x10000000}, [6]uint64{math.MaxUint64, 0, 0, 0, math.MaxUint64})
}

func TestExportOCIErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, listener, want string }{
		{"notify default", "[profile]\ndefault = \"notify\"\n[syscalls]\nallow = [\"@launcher\"]\n", "/s", "runc refuses SCMP_ACT_NOTIFY as defaultAction"},
		{"no listener", "[profile]\ndefault = \"deny\"\n[syscalls]\nallow = [\"@launcher\"]\nnotify = [\"@exec\"]\n", "", "--listener-path"},
		{"audit", "[profile]\ndefault = \"deny\"\nmode = \"audit\"\n[syscalls]\nallow = [\"@launcher\"]\n", "/s", "mode = \"audit\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := profiles.ExportOCI(parse(t, tc.doc), profiles.OCIOptions{ListenerPath: tc.listener})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestExportOCINotifyWrite(t *testing.T) {
	// The loader refuses a notified write (launcher); a hand-built profile
	// can still hold one.
	p := &profiles.Profile{Name: "w", Default: profiles.ActionAllow, Rules: []profiles.Rule{{Syscalls: []string{"write"}, Action: profiles.ActionNotify}}}
	_, _, err := profiles.ExportOCI(p, profiles.OCIOptions{ListenerPath: "/s"})
	if err == nil || !strings.Contains(err.Error(), "runc refuses SCMP_ACT_NOTIFY for write") {
		t.Errorf("err = %v", err)
	}
}

func TestImportStricter(t *testing.T) {
	data, err := os.ReadFile("testdata/oci/overlap.json")
	if err != nil {
		t.Fatal(err)
	}
	im, err := profiles.ImportOCI(data, profiles.ImportOptions{File: "overlap.json"})
	if err != nil {
		t.Fatal(err)
	}
	p := im.Profile
	check := func(name string, args [6]uint64, want profiles.Action, errno profiles.Errno) {
		t.Helper()
		nr, _ := profiles.SyscallNr(name)
		v := filter.Eval(p, filter.Options{Arch: filter.ArchAMD64}, filter.Data{Nr: int32(nr), Arch: filter.AuditArchX8664, Args: args})
		if v.Action != want || v.Errno != errno {
			t.Errorf("%s %#x: %s %s, want %s %s", name, args, v.Action, v.Errno, want, errno)
		}
	}
	// kill: overlapping rules with different verdicts -> the strictest for every call.
	check("kill", [6]uint64{5, 0}, profiles.ActionKill, 0)
	// clone: masked_eq value = mask, valueTwo = value.
	check("clone", [6]uint64{0x10000000}, profiles.ActionErrno, 1)
	check("clone", [6]uint64{0x20000000}, profiles.ActionAllow, 0)
	// open notified: its alias family is notified too (stricter), io_uring denied as in the JSON.
	check("open", [6]uint64{}, profiles.ActionNotify, 0)
	check("openat", [6]uint64{}, profiles.ActionNotify, 0)
	check("io_uring_setup", [6]uint64{}, profiles.ActionErrno, 38)
	// io_uring_setup denied: its family is guarded together (stricter).
	check("io_uring_enter", [6]uint64{}, profiles.ActionErrno, 38)
	text := strings.Join(im.Stricter, "\n")
	for _, w := range []string{"kill: the argument rules syscalls[0], syscalls[1]", "openat: allow in the JSON", "creat:", "openat2:", "io_uring_enter:"} {
		if !strings.Contains(text, w) {
			t.Errorf("Stricter: no %q in\n%s", w, text)
		}
	}
	if !strings.Contains(string(im.TOML), "# STRICTER than the JSON") {
		t.Errorf("no STRICTER comment in\n%s", im.TOML)
	}
}

func TestImportErrors(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"trace", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["ptrace"],"action":"SCMP_ACT_TRACE"}]}`, "syscalls[1].action: action SCMP_ACT_TRACE is not supported"},
		{"arch", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","includes":{"arches":["vax"]}}]}`, `syscalls[0].includes.arches[0]: unknown architecture "vax"`},
		{"not x86-64", `{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_AARCH64"]}`, "does not list SCMP_ARCH_X86_64"},
		{"launcher", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","exit","exit_group","rt_sigreturn","rt_sigprocmask","execve"],"action":"SCMP_ACT_ALLOW"}]}`, "write is deny EPERM (defaultAction)"},
		{"conflict", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ERRNO"},{"names":["mount"],"action":"SCMP_ACT_KILL_PROCESS"}]}`, "mount: syscalls[0] says deny EPERM but syscalls[1] says kill"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := profiles.ImportOCI([]byte(tc.json), profiles.ImportOptions{File: "x.json"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	a, err := profiles.Load("default")
	if err != nil {
		t.Fatal(err)
	}
	b := parse(t, `[profile]
extends = ["default"]
[syscalls]
deny = ["ptrace"]
[[syscalls.rule]]
names = ["openat"]
action = "deny"
args = [{ index = 2, op = "masked_eq", mask = 0x40, value = 0x40 }]
[files]
deny = ["/etc/passwd"]
`)
	var got []string
	for _, c := range profiles.Diff(a, b) {
		got = append(got, c.String())
	}
	file := b.Sources[len(b.Sources)-1]
	// Naming openat in B replaces default's rules for it: its
	// unconditional verdict falls back to default's default.
	want := []string{
		"ptrace: notify → deny EPERM (stricter; B " + file + ":4:9 syscalls.deny)",
		"openat: allow → deny ENOSYS (stricter; B builtin:default.toml:15:11 profile.default); conditional rules changed (A: 0, B: 1; B " + file + ":5:1)",
		"files.deny /etc/passwd: added (B " + file + ":10:9)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Diff:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := profiles.Diff(a, a); len(d) != 0 {
		t.Errorf("Diff(a, a) = %v", d)
	}
}
