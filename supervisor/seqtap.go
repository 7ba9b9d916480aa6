package supervisor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/internal/tap"
	"github.com/archangel-sandbox/archangel/profiles"
)

// The sequence model's feed: every system call of every thread of the
// sandboxed tree, from the syscall tap (internal/tap: BPF programs on the
// sys_exit and process raw tracepoints, limited to the tree's cgroup), not
// from the notifications, which show only the calls the profile leaves
// undecided.
//
// Its role in each mode:
//
//   - learn: each program's threads' streams are recorded (a program is
//     the file execve named, symlinks resolved: a script is its own
//     program, not its interpreter), and at the end a model per program is
//     trained and written beside the learned profile (app.toml → app.seq,
//     SeqModelFile), with the threshold a thread's score must cross to be
//     reported. Without root the tap is unavailable: learning goes on, and
//     archangel says that no sequence model was trained and why.
//   - audit and enforce (run, with a .seq file): each thread's stream is
//     scored as it happens (analyzer.Stream). A thread whose score crosses
//     its program's threshold is reported once: a "sequence" line in the
//     event log (exe, tid, score, threshold) and the summary's counters.
//     The model kills nothing and refuses nothing on its own, in either
//     mode: it reports, and keeps each thread's current score where the
//     supervisor's decisions can read it (Supervisor.seqThread) as context
//     for the model tier. Without root the run goes on, with the tap listed
//     as a degraded mechanism.
//
// What the stream holds: every call that returned (the sys_exit tracepoint),
// including those the filter refused with an errno and those the
// supervisor answered itself, so that a program's stream is the same in
// every mode; exit and exit_group, which never return, are absent. The
// launcher shim's own calls before it execs the command are dropped.

// A program's threshold comes from its training streams only: the
// highest score the final model gives a training thread (in-sample),
// times SeqThresholdMargin, plus SeqThresholdSlack nats. In-sample scores
// are optimistic, and a Go program's runtime threads differ from run to
// run with scheduling; margin and slack were set from the variation
// measured on archangel's integration victim (a Go program, learned three
// times, five times over, machine load 4-5 on 2 cores): in-sample maxima
// 0.67-0.83 nats, thresholds 2.51-2.74; over 150 ordinary runs the
// highest thread scored 1.79; the same executable down another code path
// (13 calls it never made while learning) scored 4.72-4.86.
//
// With two learning runs or more, each run's threads are also scored by
// the model of the other runs (HeldOutMax): how much ordinary runs
// differ, as a new run will. It is reported, not used: over three runs it
// ranged from 0.8 to 4.4 on that victim (one unusual learning run is
// enough to move it), too unstable to set a threshold from; when it is
// above the threshold, learn says so.
//
// Scores are in nats per call over the score's window: a slack of 1.5
// nats means the window's calls are on average e^1.5 ≈ 4.5 times less
// likely than in the worst training window.
const (
	SeqThresholdMargin = 1.5
	SeqThresholdSlack  = 1.5
)

// seqMinCalls is the fewest calls a thread must make before it is judged:
// the mean surprise of a handful of calls says little.
const seqMinCalls = 8

// seqMaxTrainCalls bounds the calls a learning run keeps (per run, over
// all threads), 8 bytes each; past it, streams are cut and training says so.
const seqMaxTrainCalls = 8 << 20

// SeqModelFile is where the sequence models of the profile at path live:
// the same name with the extension .seq (app.toml → app.seq).
func SeqModelFile(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".seq"
}

// SeqProgram is the sequence model of one program.
type SeqProgram struct {
	Exe        string
	Model      *analyzer.SeqModel
	Threshold  float64 // a thread scoring above it is reported
	MaxScore   float64 // the highest in-sample score of a training thread
	HeldOutMax float64 // the highest score of a run's thread under the other runs' model; 0 with one run
	Threads    int     // training threads
	Calls      int     // training calls
	// Runs are the training streams, by learning run, oldest first (at
	// most seqMaxRuns): learning again adds a run and retrains on all.
	Runs [][][]int
}

// SeqModels are the per-program models of one profile, as one file.
type SeqModels struct {
	Programs map[string]*SeqProgram // by Exe
}

// The .seq file: "ASEQ\x02", a u32 count, then per program, in Exe order:
// exe (u16 length + bytes), threshold, max score, held-out max (f64),
// threads, calls (u32), the model (u32 length +
// analyzer.SeqModel.MarshalBinary), then the runs: a u32 count, per run a
// u32 count of streams, per stream a u32 length and the syscall numbers
// as zig-zag varints.
const seqFileMagic = "ASEQ\x02"

// MarshalBinary encodes the models as a .seq file.
func (m *SeqModels) MarshalBinary() ([]byte, error) {
	le := binary.LittleEndian
	b := []byte(seqFileMagic)
	b = le.AppendUint32(b, uint32(len(m.Programs)))
	for _, exe := range sortedKeys(m.Programs) {
		p := m.Programs[exe]
		if len(exe) > math.MaxUint16 {
			return nil, fmt.Errorf("seq models: program path too long: %.40s...", exe)
		}
		mb, err := p.Model.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("seq models: %s: %w", exe, err)
		}
		b = le.AppendUint16(b, uint16(len(exe)))
		b = append(b, exe...)
		b = le.AppendUint64(b, math.Float64bits(p.Threshold))
		b = le.AppendUint64(b, math.Float64bits(p.MaxScore))
		b = le.AppendUint64(b, math.Float64bits(p.HeldOutMax))
		b = le.AppendUint32(b, uint32(p.Threads))
		b = le.AppendUint32(b, uint32(p.Calls))
		b = le.AppendUint32(b, uint32(len(mb)))
		b = append(b, mb...)
		b = le.AppendUint32(b, uint32(len(p.Runs)))
		for _, run := range p.Runs {
			b = le.AppendUint32(b, uint32(len(run)))
			for _, t := range run {
				b = le.AppendUint32(b, uint32(len(t)))
				for _, nr := range t {
					b = binary.AppendVarint(b, int64(nr))
				}
			}
		}
	}
	return b, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// UnmarshalBinary decodes a .seq file.
func (m *SeqModels) UnmarshalBinary(b []byte) error {
	le := binary.LittleEndian
	if !strings.HasPrefix(string(b), seqFileMagic) || len(b) < len(seqFileMagic)+4 {
		return errors.New("not an archangel sequence-model file (bad magic or version)")
	}
	b = b[len(seqFileMagic):]
	n := le.Uint32(b)
	b = b[4:]
	out := map[string]*SeqProgram{}
	for i := range n {
		if len(b) < 2 {
			return fmt.Errorf("program %d: truncated", i)
		}
		l := int(le.Uint16(b))
		if len(b) < 2+l+36 {
			return fmt.Errorf("program %d: truncated", i)
		}
		p := &SeqProgram{Exe: string(b[2 : 2+l])}
		b = b[2+l:]
		p.Threshold = math.Float64frombits(le.Uint64(b))
		p.MaxScore = math.Float64frombits(le.Uint64(b[8:]))
		p.HeldOutMax = math.Float64frombits(le.Uint64(b[16:]))
		p.Threads, p.Calls = int(le.Uint32(b[24:])), int(le.Uint32(b[28:]))
		ml := int(le.Uint32(b[32:]))
		b = b[36:]
		if len(b) < ml {
			return fmt.Errorf("program %s: truncated model", p.Exe)
		}
		if math.IsNaN(p.Threshold) || p.Threshold <= 0 {
			return fmt.Errorf("program %s: bad threshold %v", p.Exe, p.Threshold)
		}
		p.Model = new(analyzer.SeqModel)
		if err := p.Model.UnmarshalBinary(b[:ml]); err != nil {
			return fmt.Errorf("program %s: %w", p.Exe, err)
		}
		b = b[ml:]
		var err error
		if p.Runs, b, err = decodeRuns(b); err != nil {
			return fmt.Errorf("program %s: %w", p.Exe, err)
		}
		if out[p.Exe] != nil {
			return fmt.Errorf("program %s listed twice", p.Exe)
		}
		out[p.Exe] = p
	}
	if len(b) != 0 {
		return fmt.Errorf("%d bytes after the last program", len(b))
	}
	m.Programs = out
	return nil
}

// decodeRuns reads the training runs of one program; every count is
// checked against the bytes left (a varint takes at least one).
func decodeRuns(b []byte) ([][][]int, []byte, error) {
	le := binary.LittleEndian
	count := func() (int, error) {
		if len(b) < 4 {
			return 0, errors.New("truncated runs")
		}
		n := le.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			return 0, fmt.Errorf("count %d exceeds the %d bytes left", n, len(b))
		}
		return int(n), nil
	}
	nruns, err := count()
	if err != nil {
		return nil, nil, err
	}
	runs := make([][][]int, nruns)
	for r := range runs {
		nt, err := count()
		if err != nil {
			return nil, nil, err
		}
		runs[r] = make([][]int, nt)
		for i := range runs[r] {
			n, err := count()
			if err != nil {
				return nil, nil, err
			}
			t := make([]int, n)
			for j := range t {
				v, k := binary.Varint(b)
				if k <= 0 || v < math.MinInt32 || v > math.MaxInt32 {
					return nil, nil, errors.New("bad syscall number in a training stream")
				}
				t[j], b = int(v), b[k:]
			}
			runs[r][i] = t
		}
	}
	return runs, b, nil
}

// LoadSeqModels reads a .seq file.
func LoadSeqModels(path string) (*SeqModels, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load sequence models: %w", err)
	}
	m := new(SeqModels)
	if err := m.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("load sequence models %s: %w\n\thint: learn again (`archangel learn --out %s -- COMMAND`) to rewrite it",
			path, err, strings.TrimSuffix(path, ".seq")+".toml")
	}
	return m, nil
}

// WriteFile writes the models to path (through a temporary file and a
// rename: a reader never sees half a file).
func (m *SeqModels) WriteFile(path string) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write sequence models: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write sequence models: %w", err)
	}
	return nil
}

// SeqRecorder collects, in a learning run, each program's thread streams.
type SeqRecorder struct {
	mu          sync.Mutex
	traces      map[string][][]int
	calls       int
	cut         bool
	unavailable string // why the tap did not run, or ""
}

// NewSeqRecorder returns an empty recorder; set Cmd.SeqRecorder to it.
func NewSeqRecorder() *SeqRecorder { return &SeqRecorder{traces: map[string][][]int{}} }

func (r *SeqRecorder) add(exe string, trace []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls+len(trace) > seqMaxTrainCalls {
		trace = trace[:max(seqMaxTrainCalls-r.calls, 0)]
		r.cut = true
	}
	if len(trace) == 0 {
		return
	}
	r.calls += len(trace)
	r.traces[exe] = append(r.traces[exe], trace)
}

// Unavailable says why nothing could be recorded ("" when the tap ran).
func (r *SeqRecorder) Unavailable() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unavailable
}

// Train trains one model per program: on this run's streams plus the
// runs prev (the .seq file learned before, or nil) kept for it, the
// newest seqMaxRuns runs at most. Programs of prev this run did not see
// are kept as they were.
//
// The LM is of order seqOrder, Kneser-Ney with discount 0.75; score
// settings are analyzer.DefaultSeqConfig's.
//
// The threshold comes from the training streams only (see
// SeqThresholdMargin). report has one line per program trained.
func (r *SeqRecorder) Train(prev *SeqModels) (m *SeqModels, report []string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m = &SeqModels{Programs: map[string]*SeqProgram{}}
	if prev != nil {
		for exe, p := range prev.Programs {
			m.Programs[exe] = p
		}
	}
	for _, exe := range sortedKeys(r.traces) {
		var runs [][][]int
		if old := m.Programs[exe]; old != nil {
			runs = append(runs, old.Runs...)
		}
		runs = append(runs, r.traces[exe])
		runs = trimRuns(runs)
		p, order, err := trainProgram(exe, runs)
		if err != nil {
			return nil, nil, err
		}
		m.Programs[exe] = p
		line := fmt.Sprintf("%s: %d threads, %d calls, %d run(s), order %d, threshold %.2f nats (max training score %.2f",
			exe, p.Threads, p.Calls, len(runs), order, p.Threshold, p.MaxScore)
		switch {
		case len(runs) == 1:
			line += "; one run: learn again to see how much runs differ)"
		case p.HeldOutMax > p.Threshold:
			line += fmt.Sprintf("; held out across runs %.2f, above the threshold: ordinary runs of it may be reported; learn more runs)", p.HeldOutMax)
		default:
			line += fmt.Sprintf("; held out across runs %.2f)", p.HeldOutMax)
		}
		report = append(report, line)
	}
	if r.cut {
		report = append(report, fmt.Sprintf("streams cut after %d calls in all", seqMaxTrainCalls))
	}
	return m, report, nil
}

// seqOrder is the n-gram order of per-program models. Fixed, not chosen
// by held-out NLL: a program's training set is a few runs, and the
// threshold is set from in-sample scores, which a higher order makes
// meaningless by memorising the training streams (measured: order 6
// chosen by held-out NLL gave in-sample maxima of 0.36 nats and a
// threshold ordinary runs crossed; order 3 gives about 1.2).
const seqOrder = 3

// seqMaxRuns is how many learning runs a program's model keeps.
const seqMaxRuns = 8

// trimRuns keeps the newest runs: at most seqMaxRuns, and at most
// seqMaxTrainCalls calls (the newest run is always kept).
func trimRuns(runs [][][]int) [][][]int {
	if len(runs) > seqMaxRuns {
		runs = runs[len(runs)-seqMaxRuns:]
	}
	total := 0
	for i := len(runs) - 1; i >= 0; i-- {
		for _, t := range runs[i] {
			total += len(t)
		}
		if total > seqMaxTrainCalls && i < len(runs)-1 {
			return runs[i+1:]
		}
	}
	return runs
}

func trainProgram(exe string, runs [][][]int) (*SeqProgram, int, error) {
	var traces [][]int
	for _, run := range runs {
		traces = append(traces, run...)
	}
	order := seqOrder
	cfg := analyzer.DefaultSeqConfig(order, analyzer.KneserNey, 0.75)
	model, err := analyzer.Train(traces, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("train sequence model of %s: %w", exe, err)
	}
	p := &SeqProgram{Exe: exe, Model: model, Threads: len(traces), Runs: runs}
	for _, t := range traces {
		p.Calls += len(t)
	}
	p.MaxScore = maxJudgedScore(model, traces)
	p.Threshold = SeqThresholdMargin*p.MaxScore + SeqThresholdSlack
	if len(runs) >= 2 {
		for i := range runs {
			var others [][]int
			for j, run := range runs {
				if j != i {
					others = append(others, run...)
				}
			}
			mi, err := analyzer.Train(others, cfg)
			if err != nil {
				return nil, 0, fmt.Errorf("train sequence model of %s: %w", exe, err)
			}
			p.HeldOutMax = max(p.HeldOutMax, maxJudgedScore(mi, runs[i]))
		}
	}
	return p, order, nil
}

// maxJudgedScore is the highest score m gives the streams a run would
// judge (seqMinCalls calls or more; all of them when none is that long).
func maxJudgedScore(m *analyzer.SeqModel, traces [][]int) float64 {
	var best, bestShort float64
	s := m.NewStream()
	for _, t := range traces {
		s.Reset()
		for _, c := range t {
			s.Observe(c)
		}
		if len(t) >= seqMinCalls {
			best = max(best, s.Score())
		} else {
			bestShort = max(bestShort, s.Score())
		}
	}
	if best == 0 {
		return bestShort
	}
	return best
}

// SeqStats are the sequence model's figures for one run.
type SeqStats struct {
	Active      bool   `json:"active"`                // the tap ran
	Learning    bool   `json:"learning,omitempty"`    // streams recorded for training, not scored
	Threads     uint64 `json:"threads"`               // threads seen to their end (or the run's)
	Scored      uint64 `json:"threads_scored"`        // of which a model scored
	Unmodelled  uint64 `json:"threads_unmodelled"`    // of programs the .seq file has no model for
	Calls       uint64 `json:"calls"`                 // syscall records read
	Anomalous   uint64 `json:"anomalous_threads"`     // threads reported
	Lost        uint64 `json:"records_lost"`          // records the ring buffer had no room for
	Dropped     uint64 `json:"records_unattributed"`  // records of a task whose program was unknown
	ReaderNS    uint64 `json:"reader_ns"`             // time spent handling records
	Unavailable string `json:"unavailable,omitempty"` // why the tap did not run
}

type seqCounters struct {
	active                                        atomic.Bool
	learning                                      bool
	threads, scored, unmodelled, calls, anomalous atomic.Uint64
	lost, dropped, readerNS                       atomic.Uint64
	mu                                            sync.Mutex
	unavailable                                   string
}

func (c *seqCounters) snapshot() *SeqStats {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	why := c.unavailable
	c.mu.Unlock()
	return &SeqStats{Active: c.active.Load(), Learning: c.learning, Threads: c.threads.Load(), Scored: c.scored.Load(), Unmodelled: c.unmodelled.Load(),
		Calls: c.calls.Load(), Anomalous: c.anomalous.Load(), Lost: c.lost.Load(), Dropped: c.dropped.Load(),
		ReaderNS: c.readerNS.Load(), Unavailable: why}
}

// writeSeqSummary is the summary's sequence-model line.
func writeSeqSummary(w io.Writer, s *SeqStats) {
	if s == nil {
		return
	}
	switch {
	case !s.Active:
		fmt.Fprintf(w, "  sequence: not fed (%s)\n", s.Unavailable)
	case s.Learning:
		fmt.Fprintf(w, "  sequence: %d threads recorded, %d calls, %d records lost, %d unattributed\n", s.Threads, s.Calls, s.Lost, s.Dropped)
	default:
		fmt.Fprintf(w, "  sequence: %d threads scored, %d of programs without a model, %d calls, %d anomalous, %d records lost, %d unattributed\n",
			s.Scored, s.Unmodelled, s.Calls, s.Anomalous, s.Lost, s.Dropped)
	}
}

// SeqThread is what the sequence model knows of one live thread.
type SeqThread struct {
	Exe       string
	Calls     int
	Score     float64
	Threshold float64
	Anomalous bool
}

// seqFeeder turns tap records into per-thread streams. deliver runs on
// the tap's reader goroutine only; live is shared with the supervisor.
type seqFeeder struct {
	tap       *tap.Tap
	rec       *SeqRecorder // learn
	models    *SeqModels   // run
	sup       *Supervisor
	c         *seqCounters
	done      chan struct{}
	shimPID   atomic.Int32 // its records before its second exec are the launcher's
	shimExecs int          // the shim's exec events: 1 = the shim itself, 2 = the command

	buffered int              // learn: calls held in live threads' traces
	procs    map[int32]string // tgid → program
	parent   map[int32]int32  // new task's tid → the tgid that forked it
	threads  map[int32]*seqThreadState

	mu   sync.Mutex
	live map[int32]SeqThread // updated after each batch
}

type seqThreadState struct {
	pid     int32
	exe     string
	prog    *SeqProgram
	stream  *analyzer.Stream
	trace   []int
	flagged bool
	dirty   bool
}

// startSeqTap opens the tap on the tree's cgroup before the shim starts
// (so that no record is missed); runSeqTap starts reading once the shim's
// pid is known. Failure is a degraded mechanism, never silent.
func (c *Cmd) startSeqTap(sup *Supervisor) {
	if c.SeqRecorder == nil && c.SeqModels == nil {
		return
	}
	counters := &seqCounters{learning: c.SeqRecorder != nil}
	sup.stats.seq = counters
	fail := func(why string) {
		counters.mu.Lock()
		counters.unavailable = why
		counters.mu.Unlock()
		if c.SeqRecorder != nil {
			c.SeqRecorder.mu.Lock()
			c.SeqRecorder.unavailable = why
			c.SeqRecorder.mu.Unlock()
			c.degraded = append(c.degraded, "syscall tap unavailable ("+why+"): no sequence model is trained")
		} else {
			c.degraded = append(c.degraded, "syscall tap unavailable ("+why+"): thread streams are not scored by the sequence model")
		}
	}
	if err := tap.Available(); err != nil {
		fail(err.Error())
		return
	}
	if c.cg == nil {
		fail("the sandboxed tree has no cgroup of its own to limit the tap to")
		return
	}
	t, err := tap.Open(c.cg.dir, tap.Options{})
	if err != nil {
		fail(err.Error())
		return
	}
	counters.active.Store(true)
	c.seq = &seqFeeder{tap: t, rec: c.SeqRecorder, models: c.SeqModels, sup: sup, c: counters, done: make(chan struct{}),
		procs: map[int32]string{}, parent: map[int32]int32{}, threads: map[int32]*seqThreadState{}, live: map[int32]SeqThread{}}
	sup.seq = c.seq
}

func (c *Cmd) runSeqTap() {
	f := c.seq
	if f == nil {
		return
	}
	f.shimPID.Store(int32(c.pid))
	go func() {
		defer close(f.done)
		if err := f.tap.Run(f.deliver); err != nil {
			f.sup.logger.Warn("degraded: syscall tap stopped", "err", err)
			f.sup.stats.Degrade(fmt.Sprintf("syscall tap stopped (%v): later calls are not scored", err))
		}
	}()
}

// stopSeqTap detaches the tap, handles every record still buffered, ends
// every thread's stream and frees the tap. The tree must be dead.
func (c *Cmd) stopSeqTap() {
	f := c.seq
	if f == nil {
		return
	}
	c.seq = nil
	f.tap.Stop()
	if f.shimPID.Load() != 0 {
		<-f.done
	}
	for tid := range f.threads {
		f.endThread(tid)
	}
	f.c.lost.Store(f.tap.Lost())
	f.tap.Close()
	if n := f.c.lost.Load(); n > 0 {
		f.sup.stats.Degrade(fmt.Sprintf("syscall tap: %d records lost (ring buffer full): the streams have gaps", n))
	}
}

func (f *seqFeeder) deliver(batch []tap.Event) {
	t0 := time.Now()
	shim := f.shimPID.Load()
	for i := range batch {
		ev := &batch[i]
		switch ev.Kind {
		case tap.KindExec:
			if ev.PID == shim && f.shimExecs < 2 {
				// The tap is attached before the shim starts, so the
				// first exec of its pid is archangel's own re-exec as the
				// shim and the second the command's.
				if f.shimExecs++; f.shimExecs < 2 {
					continue
				}
			}
			for tid, th := range f.threads {
				if th.pid == ev.PID || tid == ev.Nr {
					f.endThread(tid)
				}
			}
			f.procs[ev.PID] = execProgram(ev.PID, ev.Path)
		case tap.KindFork:
			f.parent[ev.Nr] = ev.PID
		case tap.KindExit:
			f.endThread(ev.TID)
			if ev.TID == ev.PID {
				// The leader is gone: its pid may be reused by another
				// process. Its other threads keep their program; a thread
				// they create later is named from /proc.
				delete(f.procs, ev.PID)
			}
		case tap.KindSyscall:
			if ev.PID == shim && f.shimExecs < 2 {
				continue // the launcher shim, before it execs the command
			}
			f.c.calls.Add(1)
			th := f.threads[ev.TID]
			if th == nil {
				if th = f.newThread(ev.TID, ev.PID); th == nil {
					f.c.dropped.Add(1)
					continue
				}
			}
			f.observe(th, ev)
		}
	}
	f.publish()
	f.c.readerNS.Add(uint64(time.Since(t0)))
}

// newThread starts the stream of a thread seen for the first time.
func (f *seqFeeder) newThread(tid, pid int32) *seqThreadState {
	exe, ok := f.procs[pid]
	if !ok {
		// A process made by fork without exec runs its parent's program.
		if pp, forked := f.parent[pid]; forked {
			exe, ok = f.procs[pp]
		}
		if !ok {
			l, err := os.Readlink("/proc/" + strconv.Itoa(int(pid)) + "/exe")
			if err != nil {
				return nil
			}
			exe = l
		}
		f.procs[pid] = exe
	}
	delete(f.parent, tid)
	th := &seqThreadState{pid: pid, exe: exe}
	if f.models != nil {
		if th.prog = f.models.Programs[exe]; th.prog != nil {
			th.stream = th.prog.Model.NewStream()
		}
	}
	f.threads[tid] = th
	return th
}

func (f *seqFeeder) observe(th *seqThreadState, ev *tap.Event) {
	th.dirty = true
	switch {
	case f.rec != nil:
		if f.buffered < seqMaxTrainCalls {
			th.trace = append(th.trace, int(ev.Nr))
			f.buffered++
		} else {
			f.rec.mu.Lock()
			f.rec.cut = true
			f.rec.mu.Unlock()
		}
	case th.stream != nil:
		th.stream.Observe(int(ev.Nr))
		// Judged as soon as a full window has been seen: from then on
		// the score is a running maximum, so crossing now means crossing
		// at the end.
		if !th.flagged && th.stream.Events() >= max(seqMinCalls, th.prog.Model.Config().Window) && th.stream.Score() > th.prog.Threshold {
			f.report(ev.TID, th, ev.Nr)
		}
	}
}

// endThread finishes a thread's stream: recorded (learn) or judged once
// more (short threads are judged only here).
func (f *seqFeeder) endThread(tid int32) {
	th := f.threads[tid]
	if th == nil {
		return
	}
	delete(f.threads, tid)
	f.mu.Lock()
	delete(f.live, tid)
	f.mu.Unlock()
	f.c.threads.Add(1)
	switch {
	case f.rec != nil:
		f.rec.add(th.exe, th.trace)
	case th.stream != nil:
		f.c.scored.Add(1)
		if f.sup.logger.Enabled(context.Background(), slog.LevelDebug) {
			f.sup.logger.Debug("sequence model: thread ended", "pid", th.pid, "tid", tid, "exe", th.exe,
				"calls", th.stream.Events(), "score", th.stream.Score(), "threshold", th.prog.Threshold)
		}
		if !th.flagged && th.stream.Events() >= seqMinCalls && th.stream.Score() > th.prog.Threshold {
			f.report(tid, th, -1)
		}
	default:
		f.c.unmodelled.Add(1)
		if f.sup.logger.Enabled(context.Background(), slog.LevelDebug) {
			f.sup.logger.Debug("sequence model: thread of a program without a model ended", "pid", th.pid, "tid", tid, "exe", th.exe)
		}
	}
}

// report writes the "sequence" event of a thread that crossed its
// threshold; nr is the call that made it cross (-1: judged at its end).
func (f *seqFeeder) report(tid int32, th *seqThreadState, nr int32) {
	th.flagged = true
	f.c.anomalous.Add(1)
	score := th.stream.Score()
	verdict := profiles.ActionLog
	if f.sup.profile.Analyzer.Sequence == "kill" && f.sup.mode == profiles.ModeEnforce && nr >= 0 {
		// The thread is still running: end its process now rather than at
		// its next notified call.
		_ = unix.Kill(int(th.pid), unix.SIGKILL)
		verdict = profiles.ActionKill
	}
	f.sup.logger.Warn("sequence model: anomalous thread", "pid", th.pid, "tid", tid, "exe", th.exe,
		"score", score, "threshold", th.prog.Threshold, "profile", f.sup.profile.Name)
	if f.sup.events == nil {
		return
	}
	e := Event{
		Time: time.Now(), PID: uint32(th.pid), TID: int(tid), Exe: th.exe, Comm: procComm(uint32(th.pid)),
		Kind: "sequence", Verdict: verdict.String(), Source: "sequence", Layer: "sequence",
		Mode: f.sup.mode.String(), Arch: archName(auditArchX8664), Nr: nr,
		Score: score, Threshold: th.prog.Threshold, Calls: th.stream.Events(),
	}
	if nr >= 0 {
		e.Syscall = syscallName(nr)
	}
	f.sup.events.write(&e)
}

// publish copies the threads that changed to the table the supervisor
// reads.
func (f *seqFeeder) publish() {
	if f.models == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for tid, th := range f.threads {
		if !th.dirty || th.stream == nil {
			continue
		}
		th.dirty = false
		f.live[tid] = SeqThread{Exe: th.exe, Calls: th.stream.Events(), Score: th.stream.Score(), Threshold: th.prog.Threshold, Anomalous: th.flagged}
	}
}

// seqThread is the sequence model's view of thread tid, for decisions
// that want the thread's history as context; ok is false when no model
// scores it. The view lags the thread by up to the tap's poll interval.
func (s *Supervisor) seqThread(tid int) (t SeqThread, ok bool) {
	f := s.seq
	if f == nil {
		return SeqThread{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok = f.live[int32(tid)]
	return t, ok
}

// execProgram names the program a task exec'd: the absolute path execve
// was given with symlinks resolved (deterministic, and a script is its own
// program), else the task's /proc/PID/exe, else the path as given.
func execProgram(pid int32, path string) string {
	if filepath.IsAbs(path) && !strings.HasPrefix(path, "/dev/fd/") && !strings.HasPrefix(path, "/proc/") {
		if r, err := filepath.EvalSymlinks(path); err == nil {
			return r
		}
		return path
	}
	if l, err := os.Readlink("/proc/" + strconv.Itoa(int(pid)) + "/exe"); err == nil {
		return l
	}
	return path
}
