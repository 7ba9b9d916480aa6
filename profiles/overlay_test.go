package profiles

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const overlayBase = "testdata/overlay/base.toml"

// TestOverlayGoldenErrors: every bad overlay fails to load with the
// problems at file:line:col, as in its golden file, and never yields a
// profile.
func TestOverlayGoldenErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/overlay/bad-*.learned.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/overlay/bad-* files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, ov, err := LoadWithOverlay(overlayBase, f)
			if err == nil {
				t.Fatalf("LoadWithOverlay(%s) = %d rules, %d learned, want an error", f, len(p.Rules), len(p.Learned))
			}
			if p != nil {
				t.Errorf("an error and a profile")
			}
			_ = ov
			if len(Errors(err)) == 0 {
				t.Errorf("error carries no *Error: %v", err)
			}
			got := err.Error() + "\n"
			if !strings.Contains(got, "--no-learned") {
				t.Errorf("error does not say how to run without the overlay:\n%s", got)
			}
			golden := strings.TrimSuffix(f, ".learned.toml") + ".golden"
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
				t.Errorf("error mismatch\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

func TestOverlayApply(t *testing.T) {
	base, err := Load(overlayBase)
	if err != nil {
		t.Fatal(err)
	}
	p, ov, err := LoadWithOverlay(overlayBase, "testdata/overlay/good.learned.toml")
	if err != nil {
		t.Fatal(err)
	}
	if ov == nil || len(ov.Rules) != 4 || len(ov.Pending) != 1 || len(ov.Refused) != 1 {
		t.Fatalf("overlay = %+v", ov)
	}
	// personality(0xffffffff) allowed by a learned rule ahead of the
	// profile's notify; other values still notified.
	sp := p.Policy("personality")
	if len(sp.Conds) != 1 || sp.Conds[0].Learned == nil || sp.Conds[0].Action != ActionAllow ||
		!slices.Equal(sp.Conds[0].Args, []ArgCond{{Index: 0, Op: OpEq, Value: 0xffffffff}}) || sp.Action != ActionNotify {
		t.Errorf("personality policy = %+v", sp)
	}
	if e := sp.Conds[0].Learned; e.Count != 5 || e.Runs != 2 || e.Source != "analyzer" || !slices.Equal(e.SeenIn, []string{"/usr/bin/python3"}) ||
		!e.Last.Equal(time.Date(2026, 11, 26, 1, 2, 3, 0, time.UTC)) {
		t.Errorf("evidence = %+v", e)
	}
	if got := sp.Conds[0].Learned.Summary(); got != "5 verdicts in 2 runs from the analyzer, 2026-11-26" {
		t.Errorf("Summary() = %q", got)
	}
	// prctl: the learned deny goes first, the profile's PR_SET_SECCOMP
	// deny stays.
	sp = p.Policy("prctl")
	if len(sp.Conds) != 2 || sp.Conds[0].Learned == nil || sp.Conds[0].Errno != 13 || len(sp.Conds[0].Args) != 5 || sp.Conds[1].Learned != nil {
		t.Errorf("prctl policy = %+v", sp)
	}
	// uname has no scalar argument: the learned allow is unconditional.
	if sp := p.Policy("uname"); sp.Action != ActionAllow || !strings.HasPrefix(sp.Source, "learned.rule") || len(sp.Conds) != 0 {
		t.Errorf("uname policy = %+v", sp)
	}
	// The path verdict goes to the supervisor.
	if len(p.Learned) != 1 || p.Learned[0].Path != "/srv/data/report.txt" || p.Learned[0].Exe != "/usr/bin/cat" || p.Learned[0].Access != "read" {
		t.Errorf("Learned = %+v", p.Learned)
	}
	if !slices.Contains(p.Sources, "testdata/overlay/good.learned.toml") {
		t.Errorf("Sources = %v", p.Sources)
	}
	// The profile itself is untouched.
	if len(base.Learned) != 0 || base.Policy("uname").Action != ActionNotify || len(base.Policy("personality").Conds) != 0 {
		t.Errorf("ApplyOverlay changed its input")
	}
	// show marks the learned rules with their evidence, and lists the
	// path verdicts.
	out, err := p.MarshalTOML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# learned: 5 verdicts in 2 runs from the analyzer, 2026-11-26",
		"# learned: 9 verdicts in 3 runs from the analyzer", `openat "/srv/data/report.txt" (read) by /usr/bin/cat`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	// The shown profile parses back to the same policies.
	back, err := Parse("shown.toml", out)
	if err != nil {
		t.Fatalf("parse show output: %v\n%s", err, out)
	}
	for _, name := range []string{"personality", "prctl", "uname"} {
		a, b := p.Policy(name), back.Policy(name)
		if a.Action != b.Action || !sameConds(a.Conds, b.Conds) {
			t.Errorf("%s: shown %+v, applied %+v", name, b, a)
		}
	}
}

// TestOverlayMissing: no overlay file is no overlay.
func TestOverlayMissing(t *testing.T) {
	p, ov, err := LoadWithOverlay(overlayBase, filepath.Join(t.TempDir(), "none.learned.toml"))
	if err != nil || ov != nil || p == nil || len(p.Learned) != 0 {
		t.Fatalf("LoadWithOverlay with no file = %v, %v, %v", p, ov, err)
	}
}

func TestOverlayPath(t *testing.T) {
	t.Setenv("ARCHANGEL_STATE_DIR", "/state")
	for _, tc := range []struct{ ref, want string }{
		{"app.toml", "app.learned.toml"},
		{"/etc/x/web.toml", "/etc/x/web.learned.toml"},
		{"./dir/app", "./dir/app.learned.toml"},
		{"default", "/state/default.learned.toml"},
	} {
		if got := OverlayPath(tc.ref); got != tc.want {
			t.Errorf("OverlayPath(%q) = %q, want %q", tc.ref, got, tc.want)
		}
	}
}

func scalar(name string, action Action, vals ...uint64) LearnedVerdict {
	v := LearnedVerdict{Syscall: name, Action: action, Scalar: true, Args: []ArgCond{}}
	if action == ActionErrno {
		v.Errno = 1
	}
	for i, x := range vals {
		v.Args = append(v.Args, ArgCond{Index: i, Op: OpEq, Value: x})
	}
	return v
}

func withEvidence(v LearnedVerdict, count, runs int, at time.Time) LearnedVerdict {
	v.Evidence = Evidence{Count: count, Runs: runs, First: at, Last: at, Source: "analyzer"}
	return v
}

// TestOverlayMerge: evidence adds up until a verdict has MinEvidenceRuns;
// a flip refuses the call; dangerous allows and conflicts never become
// rules; the written overlay parses back to the same entries.
func TestOverlayMerge(t *testing.T) {
	base, err := Load(overlayBase)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	ov := NewOverlay("x.learned.toml", "base")
	ov.Add(withEvidence(scalar("personality", ActionAllow, 0), 3, 1, t0))
	ov.Add(withEvidence(scalar("personality", ActionErrno, 8), 1, 1, t0))
	ov.Add(withEvidence(scalar("mount", ActionAllow), 1, 1, t0)) // wrong args are fine here: refused for the call
	openKey := LearnedVerdict{Syscall: "openat", Action: ActionAllow, Exe: "/usr/bin/cat", Path: "/srv/a", Access: "read"}
	ov.Add(withEvidence(openKey, 2, 1, t0))
	shadow := LearnedVerdict{Syscall: "openat", Action: ActionAllow, Exe: "/usr/bin/cat", Path: "/etc/shadow", Access: "read"}
	ov.Add(withEvidence(shadow, 5, 1, t0))
	conflicting := scalar("prctl", ActionAllow, 22, 0, 0, 0, 0)
	ov.Add(withEvidence(conflicting, 1, 1, t0))
	ov.Settle(base)
	if len(ov.Rules) != 0 || len(ov.Pending) != 4 || len(ov.Refused) != 2 {
		t.Fatalf("after one run: %d rules, %d pending, %d refused: %+v", len(ov.Rules), len(ov.Pending), len(ov.Refused), ov)
	}
	// A second run: personality(0) and the open agree again, personality(8)
	// flips, the conflicting prctl reaches the threshold.
	t1 := t0.Add(time.Hour)
	ov.Add(withEvidence(scalar("personality", ActionAllow, 0), 2, 1, t1))
	ov.Add(withEvidence(scalar("personality", ActionAllow, 8), 1, 1, t1))
	ov.Add(withEvidence(openKey, 1, 1, t1))
	ov.Add(withEvidence(conflicting, 1, 1, t1))
	ov.Settle(base)
	var rules []string
	for _, v := range ov.Rules {
		rules = append(rules, v.What())
	}
	if !slices.Equal(rules, []string{`openat "/srv/a" (read) by /usr/bin/cat`, "personality(arg0=0x0)"}) {
		t.Errorf("rules = %q", rules)
	}
	if r := ov.Rules[1]; r.Count != 5 || r.Runs != 2 || !r.First.Equal(t0) || !r.Last.Equal(t1) {
		t.Errorf("merged evidence = %+v", r.Evidence)
	}
	reasons := map[string]string{}
	for _, v := range ov.Refused {
		reasons[v.What()] = v.Reason
	}
	for what, want := range map[string]string{
		"personality(arg0=0x8)": "verdict flipped",
		"mount()":               "may not allow mount",
		`openat "/etc/shadow" (read) by /usr/bin/cat`:              "credential path",
		"prctl(arg0=0x16, arg1=0x0, arg2=0x0, arg3=0x0, arg4=0x0)": "conflicts with the profile",
	} {
		if !strings.Contains(reasons[what], want) {
			t.Errorf("refused %s: reason %q, want it to mention %q (refused: %v)", what, reasons[what], want, reasons)
		}
	}
	if len(ov.Pending) != 0 {
		t.Errorf("pending = %+v", ov.Pending)
	}
	// Evidence for a refused call is kept, never promoted.
	ov.Add(withEvidence(scalar("personality", ActionAllow, 8), 7, 3, t1))
	ov.Settle(base)
	if len(ov.Rules) != 2 {
		t.Errorf("a refused verdict came back: %+v", ov.Rules)
	}

	// Round trip, minus the refused mount entry whose args are not
	// mount's (it was built by hand above).
	ov.Refused = slices.DeleteFunc(ov.Refused, func(v LearnedVerdict) bool { return v.Syscall == "mount" })
	data := ov.Marshal()
	back, err := ParseOverlay("x.learned.toml", data)
	if err != nil {
		t.Fatalf("parse written overlay: %v\n%s", err, data)
	}
	for i, pair := range [][2][]LearnedVerdict{{ov.Rules, back.Rules}, {ov.Pending, back.Pending}, {ov.Refused, back.Refused}} {
		if len(pair[0]) != len(pair[1]) {
			t.Fatalf("section %d: wrote %d entries, read %d\n%s", i, len(pair[0]), len(pair[1]), data)
		}
		for j := range pair[0] {
			a, b := pair[0][j], pair[1][j]
			if a.Key() != b.Key() || a.Action != b.Action || a.Count != b.Count || a.Runs != b.Runs || !a.Last.Equal(b.Last) || a.Reason != b.Reason {
				t.Errorf("section %d entry %d: wrote %+v, read %+v", i, j, a, b)
			}
		}
	}
	if _, err := ApplyOverlay(base, back); err != nil {
		t.Errorf("apply written overlay: %v", err)
	}
}

// TestOverlayPendingBound: past MaxOverlayEntries pending entries, the
// least recently seen go.
func TestOverlayPendingBound(t *testing.T) {
	base, err := Load(overlayBase)
	if err != nil {
		t.Fatal(err)
	}
	ov := NewOverlay("x", "base")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range MaxOverlayEntries + 10 {
		ov.Add(withEvidence(scalar("personality", ActionAllow, uint64(i)), 1, 1, t0.Add(time.Duration(i)*time.Second)))
	}
	ov.Settle(base)
	if len(ov.Pending) != MaxOverlayEntries {
		t.Fatalf("%d pending", len(ov.Pending))
	}
	for _, v := range ov.Pending {
		if v.Args[0].Value < 10 {
			t.Fatalf("kept personality(%d), one of the oldest", v.Args[0].Value)
		}
	}
}

func TestIsCredentialPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/etc/shadow": true, "/etc/gshadow-": true, "/root/.ssh/id_rsa": true, "/home/a/.ssh": true,
		"/home/a/.gnupg/private-keys-v1.d/x.key": true, "/home/a/.docker/config.json": true, "/home/a/.aws/credentials": true,
		"/etc/passwd": false, "/home/a/.sshrc": false, "/srv/ssh/x": false, "/home/a/.docker/other.json": false,
	} {
		if got := IsCredentialPath(p); got != want {
			t.Errorf("IsCredentialPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestScalarArgs(t *testing.T) {
	for name, want := range map[string][]int{"personality": {0}, "prctl": {0, 1, 2, 3, 4}, "openat": {0, 2, 3}, "uname": {}, "getpid": {}} {
		got, ok := ScalarArgs(name)
		if !ok || !slices.Equal(got, want) {
			t.Errorf("ScalarArgs(%q) = %v, %v; want %v", name, got, ok, want)
		}
	}
	if _, ok := ScalarArgs("kexec_load"); ok {
		t.Errorf("kexec_load has no trace event here; ScalarArgs should not know it")
	}
}

// FuzzParseOverlay: no panic; an error or an overlay, never both; a valid
// overlay writes back to one that parses to the same entries.
func FuzzParseOverlay(f *testing.F) {
	files, _ := filepath.Glob("testdata/overlay/*.learned.toml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("[overlay]\nprofile = \"x\"\n[[pending]]\nsyscall = \"uname\"\nverdict = \"allow\"\nargs = []\ncount = 1\nruns = 1\nfirst_seen = \"2026-11-26T01:02:03.5+02:00\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ov, err := ParseOverlay("fuzz.learned.toml", data)
		if (ov == nil) == (err == nil) {
			t.Fatalf("ParseOverlay returned overlay %v and error %v", ov != nil, err)
		}
		if err != nil {
			if len(Errors(err)) == 0 {
				t.Fatalf("error without *Error: %v", err)
			}
			return
		}
		out := ov.Marshal()
		back, err := ParseOverlay("fuzz.learned.toml", out)
		if err != nil {
			t.Fatalf("written overlay does not parse: %v\n%s", err, out)
		}
		for i, pair := range [][2][]LearnedVerdict{{ov.Rules, back.Rules}, {ov.Pending, back.Pending}, {ov.Refused, back.Refused}} {
			if len(pair[0]) != len(pair[1]) {
				t.Fatalf("section %d: %d entries, %d after a round trip\n%s", i, len(pair[0]), len(pair[1]), out)
			}
			for j := range pair[0] {
				a, b := pair[0][j], pair[1][j]
				if a.Key() != b.Key() || a.Action != b.Action || a.Errno != b.Errno || a.Count != b.Count || a.Runs != b.Runs ||
					!a.First.Equal(b.First) || !a.Last.Equal(b.Last) || a.Source != b.Source || a.Reason != b.Reason || !slices.Equal(a.SeenIn, b.SeenIn) {
					t.Fatalf("section %d entry %d: %+v, after a round trip %+v", i, j, a, b)
				}
			}
		}
	})
}

// TestOverlayConflict: a learned verdict may only decide calls the
// profile notifies; first-match order of the profile's conditional rules
// counts.
func TestOverlayConflict(t *testing.T) {
	p, err := Parse("c.toml", []byte(`
[profile]
default = "allow"
[syscalls]
notify = ["personality"]
deny = ["setns"]
[[syscalls.rule]]
names = ["personality"]
action = "allow"
args = [{ index = 0, value = 1 }]
[[syscalls.rule]]
names = ["prctl"]
action = "notify"
args = [{ index = 0, value = 4 }]
[[syscalls.rule]]
names = ["prctl"]
action = "deny"
args = [{ index = 0, value = 200 }]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		v         LearnedVerdict
		conflict  string // substring; "" for none
		redundant bool
	}{
		{"notified call", scalar("personality", ActionErrno, 8), "", false},
		{"the profile allows it first", scalar("personality", ActionErrno, 1), "allows personality by syscalls.rule[0]", false},
		{"the profile allows it too", scalar("personality", ActionAllow, 1), "", true},
		{"notified by a conditional rule", scalar("prctl", ActionErrno, 4, 0, 0, 0, 0), "", false},
		{"denied by a later conditional rule", scalar("prctl", ActionAllow, 200, 0, 0, 0, 0), "denies (EPERM) prctl by syscalls.rule[2]", false},
		{"allowed by the default", scalar("prctl", ActionErrno, 5, 0, 0, 0, 0), "allows prctl by profile.default", false},
		{"denied by a list", scalar("setns", ActionAllow, 3, 0), "denies (EPERM) setns by syscalls.deny", false},
		{"path verdict, a conditional rule may allow", LearnedVerdict{Syscall: "personality", Action: ActionErrno, Errno: 1, Exe: "/x", Path: "/y"}, "allows personality by syscalls.rule[0]", false},
		{"path verdict, agrees where decided", LearnedVerdict{Syscall: "personality", Action: ActionAllow, Exe: "/x", Path: "/y"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			what, redundant := tc.v.conflict(p)
			if tc.conflict == "" && what != "" || tc.conflict != "" && !strings.Contains(what, tc.conflict) || redundant != tc.redundant {
				t.Errorf("conflict() = %q, %v; want %q, %v", what, redundant, tc.conflict, tc.redundant)
			}
		})
	}
}
