package supervisor

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/internal/tap"
	"github.com/archangel-sandbox/archangel/profiles"
)

// loopTrace is an ordinary thread: a repeated read/write/poll cycle.
func loopTrace(n int, rng *rand.Rand) []int {
	cycle := []int{7, 0, 0, 1, 232, 0, 1} // poll read read write epoll_wait read write
	t := []int{59, 12, 9, 9, 21, 257, 5, 9, 3}
	for len(t) < n {
		t = append(t, cycle...)
		if rng.IntN(4) == 0 {
			t = append(t, 202) // futex, now and then
		}
	}
	return t
}

func trainedModels(t testing.TB, exe string) *SeqModels {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	r := NewSeqRecorder()
	for range 4 {
		r.add(exe, loopTrace(300, rng))
	}
	m, report, err := r.Train(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(report) != 1 || !strings.Contains(report[0], exe+": 4 threads") {
		t.Fatalf("report %q", report)
	}
	return m
}

func TestSeqModelsFileRoundTrip(t *testing.T) {
	m := trainedModels(t, "/usr/bin/app")
	p := m.Programs["/usr/bin/app"]
	if want := SeqThresholdMargin*p.MaxScore + SeqThresholdSlack; p.Threshold != want || p.MaxScore <= 0 || p.Calls < 1200 || p.HeldOutMax != 0 {
		t.Fatalf("program %+v: threshold want %v", p, want)
	}
	path := filepath.Join(t.TempDir(), "app.seq")
	if SeqModelFile(filepath.Join(filepath.Dir(path), "app.toml")) != path {
		t.Fatalf("SeqModelFile(app.toml) = %s", SeqModelFile("app.toml"))
	}
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSeqModels(path)
	if err != nil {
		t.Fatal(err)
	}
	g := got.Programs["/usr/bin/app"]
	if g == nil || g.Threshold != p.Threshold || g.MaxScore != p.MaxScore || g.HeldOutMax != p.HeldOutMax || g.Threads != 4 || g.Calls != p.Calls || !slices.EqualFunc(g.Runs[0], p.Runs[0], slices.Equal) {
		t.Fatalf("loaded %+v, wrote %+v", g, p)
	}
	a, b := p.Model.NewStream(), g.Model.NewStream()
	for _, s := range []int{59, 12, 7, 0, 62, 101, 0, 1} {
		if a.Observe(s) != b.Observe(s) {
			t.Fatal("loaded model scores differently")
		}
	}
	raw, _ := m.MarshalBinary()
	for _, n := range []int{0, 4, len(seqFileMagic) + 4, len(raw) / 2, len(raw) - 1} {
		var x SeqModels
		if err := x.UnmarshalBinary(raw[:n]); err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(raw))
		}
	}
}

// Learning again adds a run, retrains on all, and calibrates the
// threshold on held-out runs; programs not seen again are kept.
func TestSeqTrainAccumulatesRuns(t *testing.T) {
	first := trainedModels(t, "/usr/bin/app")
	first.Programs["/usr/bin/other"] = first.Programs["/usr/bin/app"]
	rng := rand.New(rand.NewPCG(5, 6))
	r := NewSeqRecorder()
	for range 3 {
		r.add("/usr/bin/app", loopTrace(200, rng))
	}
	m, report, err := r.Train(first)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Programs["/usr/bin/app"]
	if len(p.Runs) != 2 || !(p.HeldOutMax > 0) || p.Threads != 7 || len(report) != 1 || !strings.Contains(report[0], "held out across runs") {
		t.Fatalf("program %+v, report %q", p, report)
	}
	if want := SeqThresholdMargin*p.MaxScore + SeqThresholdSlack; p.Threshold != want || p.MaxScore <= 0 {
		t.Fatalf("threshold %v, want %v", p.Threshold, want)
	}
	if m.Programs["/usr/bin/other"] == nil {
		t.Fatal("a program not seen again was dropped")
	}
	runs := make([][][]int, seqMaxRuns+3)
	for i := range runs {
		runs[i] = [][]int{{i}}
	}
	if got := trimRuns(runs); len(got) != seqMaxRuns || got[len(got)-1][0][0] != len(runs)-1 {
		t.Fatalf("trimRuns kept %v", got)
	}
}

// feeder returns a feeder in run mode (models) or learn mode (nil), its
// supervisor writing events to buf.
func testFeeder(t testing.TB, models *SeqModels, buf *bytes.Buffer) *seqFeeder {
	sup := &Supervisor{
		profile: &profiles.Profile{Name: "t"},
		mode:    profiles.ModeAudit,
		logger:  slog.New(slog.DiscardHandler),
		events:  newEventLog(buf),
		stats:   newStats("t", profiles.ModeAudit),
	}
	f := &seqFeeder{models: models, sup: sup, c: &seqCounters{}, done: make(chan struct{}),
		procs: map[int32]string{}, parent: map[int32]int32{}, threads: map[int32]*seqThreadState{}, live: map[int32]SeqThread{}}
	if models == nil {
		f.rec = NewSeqRecorder()
	}
	sup.seq = f
	sup.stats.seq = f.c
	f.c.active.Store(true)
	f.c.learning = models == nil
	return f
}

func sysEvents(pid, tid int32, nrs []int) []tap.Event {
	out := make([]tap.Event, len(nrs))
	for i, nr := range nrs {
		out[i] = tap.Event{Kind: tap.KindSyscall, PID: pid, TID: tid, Nr: int32(nr)}
	}
	return out
}

// The feeder drops the launcher shim's calls, names programs by their
// exec, gives a forked child its parent's program, and records a stream
// per thread.
func TestSeqFeederAttribution(t *testing.T) {
	var buf bytes.Buffer
	f := testFeeder(t, nil, &buf)
	const shim = 100
	f.shimPID.Store(shim)
	var evs []tap.Event
	evs = append(evs, tap.Event{Kind: tap.KindExec, PID: shim, TID: shim, Path: "/proc/self/exe"}) // archangel re-exec'd as the shim
	evs = append(evs, sysEvents(shim, shim, []int{1, 2, 3})...)                                    // the shim's own calls
	evs = append(evs, sysEvents(shim, shim+1, []int{4, 5})...)                                     // a shim thread
	evs = append(evs, tap.Event{Kind: tap.KindExec, PID: shim, TID: shim, Path: "/nonexistent/app"})
	evs = append(evs, sysEvents(shim, shim, []int{59, 12, 56})...)
	evs = append(evs, tap.Event{Kind: tap.KindFork, PID: shim, TID: shim, Nr: 200}) // a child process
	evs = append(evs, sysEvents(200, 200, []int{56, 0})...)
	evs = append(evs, tap.Event{Kind: tap.KindFork, PID: shim, TID: shim, Nr: 101}) // a thread
	evs = append(evs, sysEvents(shim, 101, []int{202, 202})...)
	evs = append(evs, tap.Event{Kind: tap.KindExit, PID: 200, TID: 200})
	evs = append(evs, tap.Event{Kind: tap.KindExit, PID: shim, TID: 101})
	f.deliver(evs)
	for tid := range f.threads {
		f.endThread(tid)
	}
	got := f.rec.traces["/nonexistent/app"]
	if len(got) != 3 {
		t.Fatalf("traces %v, want 3 threads of /nonexistent/app", f.rec.traces)
	}
	if len(f.rec.traces) != 1 {
		t.Fatalf("programs %v: the shim's calls leaked in", f.rec.traces)
	}
	var total int
	for _, tr := range got {
		total += len(tr)
	}
	if total != 7 || f.c.calls.Load() != 7 || f.c.dropped.Load() != 0 || f.c.threads.Load() != 3 {
		t.Fatalf("%d calls recorded, counters calls %d dropped %d threads %d; want 7, 7, 0, 3",
			total, f.c.calls.Load(), f.c.dropped.Load(), f.c.threads.Load())
	}
}

// In run mode an ordinary thread is not reported, an unusual one is,
// once, with an event line; the live view shows both.
func TestSeqFeederReports(t *testing.T) {
	const exe = "/usr/bin/app"
	models := trainedModels(t, exe)
	var buf bytes.Buffer
	f := testFeeder(t, models, &buf)
	f.shimPID.Store(1) // no shim records in this stream
	f.shimExecs = 2
	f.procs[10] = exe
	rng := rand.New(rand.NewPCG(9, 9))
	f.deliver(sysEvents(10, 10, loopTrace(400, rng)))
	odd := loopTrace(100, rng)
	for range 40 {
		odd = append(odd, 101, 157, 165, 272) // ptrace prctl mount unshare
	}
	f.deliver(sysEvents(10, 11, odd))
	if v, ok := f.sup.seqThread(10); !ok || v.Anomalous || v.Calls < 400 || v.Exe != exe {
		t.Fatalf("ordinary thread's view %+v %v", v, ok)
	}
	if v, ok := f.sup.seqThread(11); !ok || !v.Anomalous || !(v.Score > v.Threshold) {
		t.Fatalf("unusual thread's view %+v %v", v, ok)
	}
	f.deliver([]tap.Event{{Kind: tap.KindExit, PID: 10, TID: 11}, {Kind: tap.KindExit, PID: 10, TID: 10}})
	f.sup.events.flush()
	if n := f.c.anomalous.Load(); n != 1 {
		t.Fatalf("%d anomalous threads, want 1", n)
	}
	if s, u := f.c.scored.Load(), f.c.unmodelled.Load(); s != 2 || u != 0 {
		t.Fatalf("scored %d unmodelled %d, want 2 0", s, u)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("event lines %q, want one", lines)
	}
	var e Event
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil {
		t.Fatal(err)
	}
	if e.Kind != "sequence" || e.TID != 11 || e.PID != 10 || e.Exe != exe || !(e.Score > e.Threshold) || e.Calls == 0 {
		t.Fatalf("event %+v", e)
	}
	var sum bytes.Buffer
	f.sup.stats.Snapshot().WriteSummary(&sum)
	if !strings.Contains(sum.String(), "sequence: 2 threads scored") || !strings.Contains(sum.String(), "1 anomalous") {
		t.Fatalf("summary:\n%s", sum.String())
	}
}

// BenchmarkSeqFeed is the supervisor's cost per tap record: attribution,
// Stream.Observe and the threshold test (the reader's own cost is
// internal/tap's BenchmarkReader).
func BenchmarkSeqFeed(b *testing.B) {
	const exe = "/usr/bin/app"
	models := trainedModels(b, exe)
	f := testFeeder(b, models, &bytes.Buffer{})
	f.shimExecs = 2
	f.procs[10] = exe
	rng := rand.New(rand.NewPCG(3, 3))
	var batch []tap.Event
	for tid := int32(10); tid < 18; tid++ {
		batch = append(batch, sysEvents(10, tid, loopTrace(64, rng))[:64]...)
	}
	b.ResetTimer()
	for b.Loop() {
		f.deliver(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/record")
}
