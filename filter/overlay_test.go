package filter

import (
	"bytes"
	"testing"

	"github.com/archangel-sandbox/archangel/profiles"
)

// TestLearnedRulesInBPF: a profile's learned overlay (profiles.ApplyOverlay)
// puts its scalar verdicts into the program itself: the learned call is
// answered in the kernel, without a notification, while the same call
// with any other argument value is still notified. Checked in the cBPF VM
// against the evaluator at every boundary (check).
func TestLearnedRulesInBPF(t *testing.T) {
	base := parse(t, "app.toml", `
[profile]
default = "allow"
[syscalls]
notify = ["personality", "prctl", "uname"]
[[syscalls.rule]]
names = ["prctl"]
action = "deny"
args = [{ index = 0, value = 22 }]
`)
	ov, err := profiles.ParseOverlay("app.learned.toml", []byte(`
[overlay]
profile = "app"

[[rule]]
syscall = "personality"
verdict = "allow"
args = [{ index = 0, value = 0xffffffff }]
count = 4
runs = 2

[[rule]]
syscall = "prctl"
verdict = "deny"
errno = "EACCES"
args = [{ index = 0, value = 4 }, { index = 1, value = 1 }, { index = 2, value = 0 }, { index = 3, value = 0 }, { index = 4, value = 0 }]
count = 2
runs = 2

[[rule]]
syscall = "uname"
verdict = "allow"
args = []
count = 3
runs = 3
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := profiles.ApplyOverlay(base, ov)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []profiles.Mode{profiles.ModeEnforce, profiles.ModeAudit} {
		check(t, p, mode)
	}
	prog, err := Compile(p, Options{Arch: ArchAMD64, Mode: profiles.ModeEnforce})
	if err != nil {
		t.Fatal(err)
	}
	nr := func(name string) int32 { n, _ := profiles.SyscallNr(name); return int32(n) }
	for _, tc := range []struct {
		name string
		d    Data
		want uint32
	}{
		{"learned personality", Data{Nr: nr("personality"), Args: [6]uint64{0xffffffff, 0xdead}}, RetAllow},
		{"other personality", Data{Nr: nr("personality"), Args: [6]uint64{0}}, RetUserNotif},
		{"personality, upper half differs", Data{Nr: nr("personality"), Args: [6]uint64{0x1ffffffff}}, RetUserNotif},
		{"learned prctl", Data{Nr: nr("prctl"), Args: [6]uint64{4, 1, 0, 0, 0, 0x55}}, RetErrno | 13},
		{"prctl, one argument differs", Data{Nr: nr("prctl"), Args: [6]uint64{4, 1, 0, 0, 1}}, RetUserNotif},
		{"profile's own prctl rule", Data{Nr: nr("prctl"), Args: [6]uint64{22}}, RetErrno | 1},
		{"learned uname", Data{Nr: nr("uname"), Args: [6]uint64{0x7ffd1234}}, RetAllow},
	} {
		tc.d.Arch = AuditArchX8664
		got, err := prog.Run(tc.d)
		if err != nil || got != tc.want {
			var b bytes.Buffer
			prog.WriteText(&b)
			t.Errorf("%s: Run = %#x, %v; want %#x\n%s", tc.name, got, err, tc.want, b.String())
		}
	}
	// Without the overlay the same calls are all notified.
	plain, err := Compile(base, Options{Arch: ArchAMD64, Mode: profiles.ModeEnforce})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := plain.Run(Data{Nr: nr("personality"), Arch: AuditArchX8664, Args: [6]uint64{0xffffffff}}); got != RetUserNotif {
		t.Errorf("without the overlay personality(0xffffffff) = %#x, want notify", got)
	}
}
