package analyzer

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
)

// grammarTraces draws traces of a small grammar with a long-range
// dependency: the first call (10 or 11) decides the last (20 or 21). Between
// them come two blocks of open(5), 1..3 reads(3), close(6), then exit(7).
// The last call's distance from the first varies from 8 to 12 calls, so no
// n-gram of order below 13 predicts it; a recurrent state can.
func grammarTraces(seed uint64, n int) [][]int {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([][]int, n)
	for i := range out {
		a := rng.IntN(2)
		t := []int{10 + a}
		for range 2 {
			t = append(t, 5)
			for range 1 + rng.IntN(3) {
				t = append(t, 3)
			}
			t = append(t, 6)
		}
		out[i] = append(t, 7, 20+a)
	}
	return out
}

// TestGRUGradient checks the hand-written backward pass against central
// finite differences of the window's loss, on a window that holds a trace
// boundary (so the reset path is covered) and ends inside a trace.
func TestGRUGradient(t *testing.T) {
	traces := [][]int{{1, 2, 3, 2, 4, 1, 2}, {3, 3, 1, 4, 2, 5, 1, 1, 2}}
	cfg := DefaultGRUConfig(3, 4, 0.01)
	cfg.Lanes, cfg.BPTT, cfg.Workers = 1, 12, 1
	m := newGRUModel(traces, cfg)
	tr := newGRUTrainer(m, traces)
	if n := tr.deal(); n != 24 {
		t.Fatalf("lane length %d, want 24 (16 calls padded to 2 windows of 12)", n)
	}
	l := tr.lanes[0]
	if !l.start[0] || !slices.Contains(l.start[1:12], true) {
		t.Fatalf("want a trace start at 0 and another inside the first window: %v", l.start)
	}
	loss := func() float64 {
		clear(l.h)
		l.window(m, 0, cfg.BPTT)
		return l.loss
	}
	loss()
	grad := slices.Clone(l.g.all)
	rng := rand.New(rand.NewPCG(3, 3))
	checked, worst := 0, 0.0
	for i := range m.p.all {
		if grad[i] == 0 && rng.IntN(4) > 0 {
			continue // unused embedding rows: check a few, not all
		}
		w := m.p.all[i]
		const h = 1e-2
		m.p.all[i] = w + h
		up := loss()
		m.p.all[i] = w - h
		down := loss()
		m.p.all[i] = w
		num := (up - down) / (2 * h)
		got := float64(grad[i])
		err := math.Abs(num-got) / (math.Max(math.Abs(num), math.Abs(got)) + 1e-2)
		worst = max(worst, err)
		if err > 2e-2 {
			t.Errorf("param %d: backward %.6f, finite difference %.6f", i, got, num)
		}
		checked++
	}
	if checked < len(m.p.all)/2 {
		t.Fatalf("checked only %d of %d parameters", checked, len(m.p.all))
	}
	t.Logf("checked %d of %d parameters; worst relative error %.2g", checked, len(m.p.all), worst)
}

// TestGRULearnsGrammar trains on the grammar and checks that held-out NLL
// falls far below the uniform model's, and that the last call, which only
// the first one predicts, is predicted.
func TestGRULearnsGrammar(t *testing.T) {
	train, held := grammarTraces(1, 300), grammarTraces(2, 60)
	cfg := DefaultGRUConfig(8, 16, 0.02)
	cfg.MaxEpochs, cfg.Lanes, cfg.BPTT, cfg.Patience, cfg.Decay = 40, 2, 16, 0, 0
	m, hist, err := TrainGRU(train, held, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range hist {
		t.Logf("epoch %d: train %.3f held-out %.3f (%.2fs)", e.Epoch, e.TrainNLL, e.HeldOutNLL, e.Seconds)
	}
	uniform := math.Log(float64(m.Vocab()))
	nll := m.NLL(held)
	if nll > 0.3*uniform {
		t.Errorf("held-out NLL %.3f nats, want well below uniform %.3f", nll, uniform)
	}
	if last := hist[len(hist)-1]; last.HeldOutNLL >= hist[0].HeldOutNLL && len(hist) > 1 {
		t.Errorf("held-out NLL did not fall: %v", hist)
	}
	var lastNLL float64
	s := m.NewStream()
	for _, tr := range held {
		s.Reset()
		var x float64
		for _, c := range tr {
			x = s.Observe(c)
		}
		lastNLL += x
	}
	lastNLL /= float64(len(held))
	// Without memory of the first call the best guess is 1/2 each: ln 2.
	if lastNLL > 0.35 {
		t.Errorf("last call NLL %.3f nats, want < 0.35 (ln 2 = 0.69 is a model that forgot the first call)", lastNLL)
	}
	t.Logf("held-out NLL %.3f (uniform %.3f); last call %.3f", nll, uniform, lastNLL)
}

func TestGRUStreamMatchesNLL(t *testing.T) {
	traces := randTraces(4, 30, 80, 10)
	cfg := DefaultGRUConfig(4, 8, 0.01)
	cfg.MaxEpochs = 2
	m, _, err := TrainGRU(traces, nil, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := randTraces(5, 5, 60, 14) // some syscalls unseen in training
	s := m.NewStream()
	var sum float64
	var n int
	for _, tr := range q {
		s.Reset()
		var tsum float64
		for _, c := range tr {
			x := s.Observe(c)
			if !(x > 0) || x > math.Log(float64(m.Vocab())/cfg.Floor)+1e-9 {
				t.Fatalf("NLL %v outside (0, ln(vocab/floor)]", x)
			}
			tsum += x
		}
		if got, want := s.Score(), tsum/float64(len(tr)); math.Abs(got-want) > 1e-9 || s.Events() != len(tr) {
			t.Errorf("Score %v after %d events, want mean %v over %d", got, s.Events(), want, len(tr))
		}
		sum += tsum
		n += len(tr)
	}
	if got := m.NLL(q); math.Abs(got-sum/float64(n)) > 1e-9 {
		t.Errorf("NLL %v, stream mean %v", got, sum/float64(n))
	}
	s.Reset()
	if s.Score() != 0 || s.Events() != 0 {
		t.Errorf("after Reset: score %v, events %d", s.Score(), s.Events())
	}
}

// TestGRUProbSumsToOne checks that the floored distribution over the
// predictable tokens is a distribution.
func TestGRUProbSumsToOne(t *testing.T) {
	m := newGRUModel(randTraces(1, 10, 40, 9), DefaultGRUConfig(4, 6, 0.01))
	logits := make([]float32, m.vout)
	matVec(logits, m.p.wo, m.h0, m.p.bo)
	var sum float64
	for y := range m.vout {
		sum += math.Exp(m.logProb(logits, y))
	}
	if math.Abs(sum-1) > 1e-6 {
		t.Errorf("probabilities sum to %v", sum)
	}
}

// TestGRUDeterministic: the same seed gives the same weights whatever the
// number of goroutines.
func TestGRUDeterministic(t *testing.T) {
	traces := randTraces(7, 40, 70, 12)
	var ws [][]float32
	for _, workers := range []int{1, 3} {
		cfg := DefaultGRUConfig(4, 8, 0.01)
		cfg.MaxEpochs, cfg.Workers = 2, workers
		m, _, err := TrainGRU(traces, traces[:5], cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, m.p.all)
	}
	if !slices.Equal(ws[0], ws[1]) {
		t.Error("weights differ between 1 and 3 workers")
	}
}

func TestGRURejectsBadConfig(t *testing.T) {
	ok := DefaultGRUConfig(4, 8, 0.01)
	for _, tc := range []struct {
		name string
		edit func(*GRUConfig)
	}{
		{"zero hidden", func(c *GRUConfig) { c.Hidden = 0 }},
		{"zero embed", func(c *GRUConfig) { c.Embed = 0 }},
		{"negative rate", func(c *GRUConfig) { c.LearnRate = -1 }},
		{"no epochs", func(c *GRUConfig) { c.MaxEpochs = 0 }},
		{"no clip", func(c *GRUConfig) { c.Clip = 0 }},
		{"floor 1", func(c *GRUConfig) { c.Floor = 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			if _, _, err := TrainGRU([][]int{{1, 2}}, nil, c, nil); err == nil {
				t.Errorf("TrainGRU accepted %+v", c)
			}
		})
	}
}

func TestGRUObserveAllocs(t *testing.T) {
	m := newGRUModel(randTraces(5, 20, 100, 40), DefaultGRUConfig(8, 16, 0.01))
	s := m.NewStream()
	q := randTraces(9, 1, 300, 45)[0]
	if a := testing.AllocsPerRun(20, func() {
		s.Reset()
		for _, c := range q {
			s.Observe(c)
		}
	}); a != 0 {
		t.Errorf("Observe allocates %v times per run, want 0", a)
	}
}

// BenchmarkGRUObserve is the per-event cost of a model of the size the
// ADFA-LD grid tries (vocabulary 175 as on ADFA-LD).
func BenchmarkGRUObserve(b *testing.B) {
	for _, h := range []int{32, 64, 128} {
		b.Run("hidden="+strconv.Itoa(h), func(b *testing.B) {
			m := newGRUModel(randTraces(5, 200, 500, 174), DefaultGRUConfig(32, h, 0.01))
			q := randTraces(6, 1, 5000, 180)[0]
			s := m.NewStream()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s.Observe(q[i%len(q)])
				i++
			}
		})
	}
}

// BenchmarkGRUEpoch is one training epoch over 50,000 calls.
func BenchmarkGRUEpoch(b *testing.B) {
	traces := randTraces(5, 200, 500, 174)
	for _, h := range []int{32, 64, 128} {
		b.Run("hidden="+strconv.Itoa(h), func(b *testing.B) {
			m := newGRUModel(traces, DefaultGRUConfig(32, h, 0.003))
			tr := newGRUTrainer(m, traces)
			for b.Loop() {
				tr.epoch()
			}
		})
	}
}

func TestFastExp(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	worst := 0.0
	for range 100000 {
		x := (rng.Float64()*2 - 1) * 700
		if rng.IntN(2) == 0 {
			x /= 100 // the range the softmax and gates use most
		}
		want, got := math.Exp(x), fastExp(x)
		worst = max(worst, math.Abs(got-want)/want)
	}
	if worst > 2e-8 {
		t.Errorf("worst relative error %.3g, want < 2e-8", worst)
	}
	for _, tc := range []struct{ x, want float64 }{{0, 1}, {-1000, 0}, {1000, math.Inf(1)}, {1, math.E}} {
		if got := fastExp(tc.x); got != tc.want && !(math.Abs(got-tc.want) <= 2e-8*tc.want) {
			t.Errorf("fastExp(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
	if !math.IsNaN(fastExp(math.NaN())) {
		t.Error("fastExp(NaN) is a number")
	}
}

// TestADFASmokeGRU runs the GRU protocol on TestADFASmoke's subset with a
// one-row grid of a small model trained for 2 epochs.
func TestADFASmokeGRU(t *testing.T) {
	requireADFA(t)
	d, err := LoadADFA(adfaDir)
	if err != nil {
		t.Fatal(err)
	}
	every := func(ts []ADFATrace, k int) []ADFATrace {
		var out []ADFATrace
		for i := 0; i < len(ts); i += k {
			out = append(out, ts[i])
		}
		return out
	}
	sub := &ADFA{Train: every(d.Train, 3), Validation: every(d.Validation, 10), Attack: every(d.Attack, 3)}
	cfg := DefaultGRUConfig(8, 16, 0.01)
	cfg.MaxEpochs = 2
	r, err := EvalADFA(sub, EvalOptions{Orders: []int{3}, Bootstrap: 100, Model: ModelGRU, GRUGrid: []GRUConfig{cfg}})
	if err != nil {
		t.Fatal(err)
	}
	g := r.GRU
	t.Logf("subset: gru AUC %.3f %v, ensemble %.3f; held-out NLL gru %.3f (epoch %d), n-gram %.3f; p99 %.0f ns", g.AUC, g.AUCCI, g.Ensemble.AUC, g.Chosen.HeldOutNLL, g.Chosen.Epochs, r.Chosen.HeldOutNLL, g.P99EventNS)
	if g.Chosen.HeldOutNLL > 2.5 {
		t.Errorf("held-out NLL %.3f nats; uniform is %.1f and the n-gram gets %.3f: the GRU learnt little", g.Chosen.HeldOutNLL, math.Log(150), r.Chosen.HeldOutNLL)
	}
	if g.AUC < 0.6 {
		t.Errorf("subset GRU AUC %.3f, want > 0.6", g.AUC)
	}
	for _, f := range []DetectionFigures{g.DetectionFigures, g.Ensemble.DetectionFigures} {
		if !(f.AUCCI[0] <= f.AUC && f.AUC <= f.AUCCI[1]) || len(f.PerFamily) != 6 {
			t.Errorf("CI %v around AUC %.3f, %d families", f.AUCCI, f.AUC, len(f.PerFamily))
		}
	}
	if g.Events == 0 || !(g.P99EventNS >= g.P50EventNS) || g.ModelBytes < 4*g.Params {
		t.Errorf("events %d, p50 %v, p99 %v, %d bytes for %d weights", g.Events, g.P50EventNS, g.P99EventNS, g.ModelBytes, g.Params)
	}
}

// TestADFAFullGRU is the full protocol with the GRU:
// go test ./analyzer -run TestADFAFullGRU -adfa-full [-adfa-json] -v -timeout 2h
func TestADFAFullGRU(t *testing.T) {
	if !*adfaFull {
		t.Skip("the full ADFA-LD evaluation runs with -adfa-full")
	}
	requireADFA(t)
	if err := RunADFAEvalOptions(adfaDir, os.Stdout, *adfaJSON, EvalOptions{Model: ModelGRU, ProgressTo: os.Stderr}); err != nil {
		t.Fatal(err)
	}
}

// TestDetectionFigures: the figures every model's scores get, on
// hand-made scores whose AUC and deduplication are known.
func TestDetectionFigures(t *testing.T) {
	tr := func(calls ...int) ADFATrace { return ADFATrace{Calls: calls} }
	d := &ADFA{
		Train: []ADFATrace{tr(1, 2, 3), tr(4, 5)},
		// The first repeats a Training trace, the last two are the same:
		// two distinct normals that are not also in Training.
		Validation: []ADFATrace{tr(1, 2, 3), tr(6), tr(7), tr(7)},
		Attack:     []ADFATrace{{Family: "A", Calls: []int{8}}, {Family: "B", Calls: []int{9}}},
	}
	normal, attack := []float64{0.1, 0.2, 0.3, 0.4}, []float64{0.35, 0.9}
	f := detectionFigures(d, normal, attack, 50)
	// 0.35 outranks 3 of the 4 normals, 0.9 all of them: 7 of 8 pairs.
	if f.AUC != 0.875 {
		t.Errorf("AUC = %v, want 0.875", f.AUC)
	}
	if f.DedupNormals != 2 || f.DedupAttacks != 2 {
		t.Errorf("deduplicated: %d normals, %d attacks; want 2 and 2", f.DedupNormals, f.DedupAttacks)
	}
	if f.FamilySizes["A"] != 1 || f.FamilySizes["B"] != 1 || f.PerFamily["B"] != 1 {
		t.Errorf("families %v, detection %v; want one trace each and B detected", f.FamilySizes, f.PerFamily)
	}
	if f.AUCCI[0] > f.AUC || f.AUCCI[1] < f.AUC {
		t.Errorf("AUC %v outside its interval %v", f.AUC, f.AUCCI)
	}
}

func TestStandardiser(t *testing.T) {
	z := standardiser([]float64{1, 100, 3, 100, 5}) // calibration half: 1, 3, 5
	for _, tc := range []struct{ x, want float64 }{{3, 0}, {5, 1}, {1, -1}, {7, 2}} {
		if got := z(tc.x); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("z(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
}

func TestEvalModelText(t *testing.T) {
	for _, m := range []EvalModel{ModelNGram, ModelGRU} {
		var got EvalModel
		if err := got.UnmarshalText([]byte(m.String())); err != nil || got != m {
			t.Errorf("%v round-trips to %v, %v", m, got, err)
		}
	}
	var m EvalModel
	if err := m.UnmarshalText([]byte("lstm")); err == nil {
		t.Error("accepted lstm")
	}
}

// TestGRUDecayAndReplay: the step size halves after an epoch without
// held-out improvement, and replaying the best epoch's schedule without
// held-out traces reproduces the returned weights exactly (EvalADFA's
// final model relies on it).
func TestGRUDecayAndReplay(t *testing.T) {
	traces, held := randTraces(11, 40, 60, 12), randTraces(12, 10, 60, 12)
	cfg := DefaultGRUConfig(4, 8, 0.05)
	cfg.MaxEpochs = 8
	m, hist, err := TrainGRU(traces, held, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	best, decayed := 0, false
	for i, e := range hist {
		if e.HeldOutNLL < hist[best].HeldOutNLL {
			best = i
		}
		if i == 0 {
			continue
		}
		want := hist[i-1].LearnRate
		if hist[i-1].HeldOutNLL >= minHeld(hist[:i-1]) {
			want *= cfg.Decay
			decayed = true
		}
		if e.LearnRate != want {
			t.Errorf("epoch %d at step size %g, want %g: %+v", e.Epoch, e.LearnRate, want, hist)
		}
	}
	if !decayed {
		t.Fatalf("no epoch failed to improve, so nothing decayed; pick a harsher setting: %+v", hist)
	}
	cfg.Schedule = nil
	for _, e := range hist[:best+1] {
		cfg.Schedule = append(cfg.Schedule, e.LearnRate)
	}
	replay, rh, err := TrainGRU(traces, nil, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rh) != best+1 || !slices.Equal(replay.p.all, m.p.all) {
		t.Errorf("replay of %d epochs ran %d and gave different weights", best+1, len(rh))
	}
}

func minHeld(h []GRUEpoch) float64 {
	v := math.Inf(1)
	for _, e := range h {
		v = min(v, e.HeldOutNLL)
	}
	return v
}
