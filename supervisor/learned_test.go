package supervisor

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
)

func learnedTestProfile(t *testing.T, extra string) (*profiles.Profile, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "app.toml")
	src := `[profile]
name = "app"
default = "allow"
[syscalls]
notify = ["personality", "@open", "@connect"]
` + extra
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := profiles.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return p, file
}

var (
	allowed = decision{action: profiles.ActionAllow, source: SourceAnalyzer, layer: SourceAnalyzer}
	denied  = decision{action: profiles.ActionErrno, errno: 1, source: SourceAnalyzer, layer: SourceAnalyzer}
)

func learnedOpen(exe, path string, access analyzer.Access) *analyzer.Call {
	return &analyzer.Call{Name: "openat", Kind: analyzer.KindOpen, Access: access, Path: path, Process: analyzer.Process{Exe: exe}}
}

// TestVerdictOfExact: what a model verdict is learned as, and what is not
// learned at all.
func TestVerdictOfExact(t *testing.T) {
	now := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	pers := &analyzer.Call{Name: "personality", Kind: analyzer.KindOther, Args: [6]uint64{0xffffffff, 0x1234, 0x5678}, Process: analyzer.Process{Exe: "/usr/bin/python3"}}
	v, ok := verdictOf(pers, allowed, now)
	if !ok || !v.Scalar || len(v.Args) != 1 || v.Args[0] != (profiles.ArgCond{Index: 0, Op: profiles.OpEq, Value: 0xffffffff}) ||
		v.SeenIn[0] != "/usr/bin/python3" || v.Exe != "" {
		t.Errorf("personality: %+v, %v", v, ok)
	}
	v, ok = verdictOf(learnedOpen("/usr/bin/cat", "/srv/a", analyzer.AccessRead), denied, now)
	if !ok || v.Scalar || v.Path != "/srv/a" || v.Access != "read" || v.Action != profiles.ActionErrno || v.Errno != 1 {
		t.Errorf("open: %+v, %v", v, ok)
	}
	conn := &analyzer.Call{Name: "connect", Kind: analyzer.KindConnect, Process: analyzer.Process{Exe: "/usr/bin/curl"},
		Addr: &analyzer.SockAddr{Family: unix.AF_INET, Addr: netip.MustParseAddrPort("127.0.0.1:45000")}}
	if v, ok = verdictOf(conn, allowed, now); !ok || v.Addr != "127.0.0.1:45000" {
		t.Errorf("connect: %+v, %v (want the exact port, not the ephemeral range)", v, ok)
	}
	for name, c := range map[string]*analyzer.Call{
		"exec (argv not in the key)": {Name: "execve", Kind: analyzer.KindExec, Path: "/bin/sh", Process: analyzer.Process{Exe: "/bin/sh"}},
		"rename (two paths)":         {Name: "rename", Kind: analyzer.KindRename, Path: "/a", Path2: "/b", Process: analyzer.Process{Exe: "/bin/mv"}},
		"truncated":                  {Name: "openat", Kind: analyzer.KindOpen, Access: analyzer.AccessRead, Path: "/a", Truncated: true, Process: analyzer.Process{Exe: "/bin/cat"}},
		"no executable":              learnedOpen("", "/a", analyzer.AccessRead),
		"unknown arguments":          {Name: "kexec_load", Kind: analyzer.KindOther},
		"unnamed socket":             {Name: "connect", Kind: analyzer.KindConnect, Process: analyzer.Process{Exe: "/bin/x"}, Addr: &analyzer.SockAddr{Family: unix.AF_UNIX, Unnamed: true}},
	} {
		if v, ok := verdictOf(c, allowed, now); ok {
			t.Errorf("%s learned as %+v", name, v)
		}
	}
	if _, ok := verdictOf(pers, decision{action: profiles.ActionKill, source: SourceAnalyzer}, now); ok {
		t.Errorf("a kill verdict was learned")
	}
}

// TestOverlayWriterRuns: two runs whose model agrees make a rule, the
// second run with a flipped verdict refuses it, and a learned verdict is
// answered by exact key only.
func TestOverlayWriterRuns(t *testing.T) {
	base, file := learnedTestProfile(t, "")
	path := profiles.OverlayPath(file)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	pers := &analyzer.Call{Name: "personality", Kind: analyzer.KindOther, Args: [6]uint64{0xffffffff}, Process: analyzer.Process{Exe: "/usr/bin/python3"}}
	read := learnedOpen("/usr/bin/cat", "/srv/a", analyzer.AccessRead)
	other := learnedOpen("/usr/bin/cat", "/srv/b", analyzer.AccessRead)
	run := func(flipB bool) {
		w := NewOverlayWriter(path, base, logger)
		for range 3 {
			w.record(pers, allowed)
			w.record(read, allowed)
		}
		if flipB {
			w.record(other, denied)
		} else {
			w.record(other, allowed)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	run(false)
	ov, err := profiles.LoadOverlay(path)
	if err != nil || ov == nil {
		t.Fatalf("after one run: %v, %v", ov, err)
	}
	if len(ov.Rules) != 0 || len(ov.Pending) != 3 {
		t.Fatalf("after one run: %d rules, %d pending, want 0 and 3", len(ov.Rules), len(ov.Pending))
	}
	run(true)
	ov, err = profiles.LoadOverlay(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range ov.Rules {
		got = append(got, v.What())
		if v.Count != 6 || v.Runs != 2 {
			t.Errorf("%s: evidence %+v, want 6 calls in 2 runs", v.What(), v.Evidence)
		}
	}
	if strings.Join(got, "|") != `openat "/srv/a" (read) by /usr/bin/cat|personality(arg0=0xffffffff)` {
		t.Errorf("rules = %q", got)
	}
	if len(ov.Refused) != 1 || ov.Refused[0].Path != "/srv/b" || !strings.Contains(ov.Refused[0].Reason, "flipped") {
		t.Errorf("refused = %+v", ov.Refused)
	}

	// The next launch: the scalar rule is in Rules (the kernel filter),
	// the path rule answered by exact key.
	p, err := profiles.ApplyOverlay(base, ov)
	if err != nil {
		t.Fatal(err)
	}
	if sp := p.Policy("personality"); len(sp.Conds) != 1 || sp.Conds[0].Learned == nil {
		t.Errorf("personality policy %+v", sp)
	}
	s, err := newSupervisor(p, nil, profiles.ModeEnforce, logger, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.startLearned(nil); err != nil {
		t.Fatal(err)
	}
	if s.rules == nil || !s.rules.kinds[analyzer.KindOpen] || !s.rules.needsCall(257) {
		t.Fatalf("learned open verdicts do not get openat decoded")
	}
	d, ok := s.learned.lookup(read)
	if !ok || d.action != profiles.ActionAllow || d.source != SourceLearned || !strings.Contains(d.rule, "learned: 6 verdicts in 2 runs") {
		t.Errorf("lookup(read /srv/a) = %+v, %v", d, ok)
	}
	for name, c := range map[string]*analyzer.Call{
		"write instead of read": learnedOpen("/usr/bin/cat", "/srv/a", analyzer.AccessWrite),
		"another program":       learnedOpen("/usr/bin/tac", "/srv/a", analyzer.AccessRead),
		"another file":          learnedOpen("/usr/bin/cat", "/srv/a2", analyzer.AccessRead),
		"refused (flipped)":     other,
	} {
		if d, ok := s.learned.lookup(c); ok {
			t.Errorf("%s: learned verdict %+v answers it", name, d)
		}
	}
	// Through the rules layer, as a run decides it.
	d, pl, _ := s.decideCall(read)
	if d.source != SourceLearned || pl != planOpen {
		t.Errorf("decideCall(read /srv/a) = %+v, plan %v; want the learned allow, carried out as an emulated open", d, pl)
	}
}

// TestStartLearnedConflict: a learned verdict the profile's [files] rules
// decide otherwise stops the launch.
func TestStartLearnedConflict(t *testing.T) {
	base, file := learnedTestProfile(t, "[files]\ndeny = [\"/srv/secret/**\"]\n")
	ov, err := profiles.ParseOverlay(profiles.OverlayPath(file), []byte(`[overlay]
profile = "app"
[[rule]]
syscall = "openat"
verdict = "allow"
exe = "/usr/bin/cat"
path = "/srv/secret/key"
access = "read"
count = 2
runs = 2
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := profiles.ApplyOverlay(base, ov)
	if err != nil {
		t.Fatal(err)
	}
	set, err := (&Cmd{Profile: p}).compileRules()
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSupervisor(p, nil, profiles.ModeEnforce, nil, nil, set)
	if err != nil {
		t.Fatal(err)
	}
	err = s.startLearned(nil)
	if err == nil || !strings.Contains(err.Error(), "app.learned.toml:3:1") || !strings.Contains(err.Error(), "conflicts with the profile") {
		t.Fatalf("startLearned = %v, want a conflict at the entry", err)
	}
	t.Log(err)
}

// TestOverlayWriterLeavesBadFile: an overlay that does not parse is not
// overwritten, and the evidence is kept for the next try.
func TestOverlayWriterLeavesBadFile(t *testing.T) {
	base, file := learnedTestProfile(t, "")
	path := profiles.OverlayPath(file)
	bad := []byte("[overlay]\nprofile = \"app\"\n[[rule]]\nsyscall = \"mount\"\n")
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	w := NewOverlayWriter(path, base, nil)
	w.record(learnedOpen("/usr/bin/cat", "/srv/a", analyzer.AccessRead), allowed)
	err := w.Close()
	if err == nil || !strings.Contains(err.Error(), "leaves it as it is") {
		t.Fatalf("Close = %v, want the file left alone", err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(bad) {
		t.Errorf("the bad overlay was rewritten:\n%s", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if ov, err := profiles.LoadOverlay(path); err != nil || ov == nil || len(ov.Pending) != 1 || ov.Pending[0].Count != 1 {
		t.Errorf("after the file was removed: %+v, %v", ov, err)
	}
}
