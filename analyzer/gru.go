package analyzer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"
)

// This file is a recurrent language model over syscall tokens: an
// embedding, one GRU layer and a softmax over the known syscalls, trained
// with truncated back-propagation through time and Adam. It is pure Go on
// float32 slices, so the package still builds without cgo; the forward and
// backward passes are written out by hand below.
//
// Token ids are those of the n-gram model: tokBOS is the input before a
// thread's first call, tokUNK every syscall training never contained, known
// syscalls from firstToken on in order of decreasing training frequency.
// The softmax predicts UNK and the known syscalls (never BOS), so output id
// = input id - 1.

// GRUConfig are the hyperparameters of a GRUModel. Embed, Hidden and
// LearnRate are chosen by held-out normal NLL (EvalADFA's GRU grid); the
// rest are fixed in DefaultGRUConfig before any evaluation.
type GRUConfig struct {
	Embed     int     // embedding width
	Hidden    int     // GRU state width
	LearnRate float64 // Adam step size of the first epoch
	MaxEpochs int     // passes over the training traces, at most
	Patience  int     // with held-out traces, stop after this many epochs in a row without improvement
	Decay     float64 // with held-out traces, the step size is multiplied by this after an epoch without improvement
	BPTT      int     // time steps per truncated back-propagation window
	Lanes     int     // independent streams per minibatch (minibatch = Lanes x BPTT calls)
	Clip      float64 // bound on the global gradient norm per update
	Floor     float64 // weight of the uniform distribution mixed into every prediction
	Seed      uint64  // fixes initial weights and trace order
	Workers   int     // goroutines computing lanes; 0 means GOMAXPROCS; results do not depend on it

	// Schedule, if set, is the step size of each epoch, and the number of
	// epochs; it replays a run with held-out traces on more data.
	Schedule []float64
}

// DefaultGRUConfig returns the settings fixed before any attack trace was
// scored (at most 20 epochs, step size halved after each epoch that does
// not improve held-out NLL, stop after 3 such epochs in a row, windows of
// 32 calls, 16 lanes, clip 5, floor 1e-3, seed 1) with the given model size
// and first step size. The halving came from a first grid's held-out NLL
// alone: at a constant step size it stalled and swung between epochs.
//
// The floor mixes 1e-3 of the uniform distribution into every prediction,
// so that one call the model has learnt to rule out (an unseen syscall
// above all) costs at most ln(vocab/1e-3) nats, about 12, instead of
// whatever the softmax's untrained tail says.
func DefaultGRUConfig(embed, hidden int, lr float64) GRUConfig {
	return GRUConfig{Embed: embed, Hidden: hidden, LearnRate: lr, MaxEpochs: 20, Patience: 3, Decay: 0.5, BPTT: 32, Lanes: 16, Clip: 5, Floor: 1e-3, Seed: 1}
}

func (c GRUConfig) validate() error {
	switch {
	case c.Embed < 1 || c.Hidden < 1:
		return fmt.Errorf("gru model: embed %d and hidden %d must be at least 1", c.Embed, c.Hidden)
	case !(c.LearnRate > 0):
		return fmt.Errorf("gru model: learning rate %g must be positive", c.LearnRate)
	case c.MaxEpochs < 1 || c.BPTT < 1 || c.Lanes < 1:
		return fmt.Errorf("gru model: epochs %d, bptt %d and lanes %d must be at least 1", c.MaxEpochs, c.BPTT, c.Lanes)
	case !(c.Clip > 0):
		return fmt.Errorf("gru model: clip %g must be positive", c.Clip)
	case c.Floor < 0 || c.Floor >= 1:
		return fmt.Errorf("gru model: floor %g out of range [0, 1)", c.Floor)
	case c.Decay < 0 || c.Decay > 1:
		return fmt.Errorf("gru model: decay %g out of range [0, 1] (0 keeps the step size)", c.Decay)
	}
	for _, lr := range c.Schedule {
		if !(lr > 0) {
			return fmt.Errorf("gru model: schedule step size %g must be positive", lr)
		}
	}
	return nil
}

func (c GRUConfig) workers() int {
	if c.Workers > 0 {
		return c.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// gruParams are views into one flat slice, so that Adam, clipping and the
// gradient sums see a single vector. Gates are stacked reset, update,
// candidate: rows [0,H), [H,2H), [2H,3H) of wx, wh, bx and bh.
type gruParams struct {
	all []float32
	emb []float32 // vin x E
	wx  []float32 // 3H x E
	bx  []float32 // 3H
	wh  []float32 // 3H x H
	bh  []float32 // 3H
	wo  []float32 // vout x H
	bo  []float32 // vout
}

func gruParamCount(vin, vout, e, h int) int {
	return vin*e + 3*h*e + 3*h + 3*h*h + 3*h + vout*h + vout
}

func bindGRUParams(all []float32, vin, vout, e, h int) gruParams {
	p := gruParams{all: all}
	take := func(n int) []float32 {
		s := all[:n:n]
		all = all[n:]
		return s
	}
	p.emb, p.wx, p.bx = take(vin*e), take(3*h*e), take(3*h)
	p.wh, p.bh = take(3*h*h), take(3*h)
	p.wo, p.bo = take(vout*h), take(vout)
	return p
}

// GRUModel is a trained recurrent LM. It is read-only after training and
// safe for concurrent use by many GRUStreams.
type GRUModel struct {
	cfg   GRUConfig
	tokOf []int32 // syscall number -> input token id; numbers past the end are UNK
	vin   int     // input ids: BOS, UNK, known syscalls
	vout  int     // output ids: UNK, known syscalls
	p     gruParams

	// For streaming: xtab[id] = wx·emb[id] + bx, the input's share of the
	// gate pre-activations, and h0 the state after reading BOS.
	xtab []float32 // vin x 3H
	h0   []float32
}

// GRUEpoch is one training epoch's figures.
type GRUEpoch struct {
	Epoch      int     `json:"epoch"`
	LearnRate  float64 `json:"learn_rate"`
	TrainNLL   float64 `json:"train_nll"`             // mean per-call loss over the epoch's updates (no floor)
	HeldOutNLL float64 `json:"heldout_nll,omitempty"` // after the epoch, with the floor
	Seconds    float64 `json:"seconds"`
}

// TrainGRU trains a GRU language model on traces. With held traces it
// measures their NLL after every epoch, multiplies the step size by
// cfg.Decay after an epoch that did not improve it, stops after
// cfg.Patience such epochs in a row and returns the weights of the best
// epoch; without, it runs cfg.MaxEpochs epochs at cfg.LearnRate, or
// cfg.Schedule. progress, if not nil, sees every epoch.
func TrainGRU(traces, held [][]int, cfg GRUConfig, progress func(GRUEpoch)) (*GRUModel, []GRUEpoch, error) {
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	m := newGRUModel(traces, cfg)
	tr := newGRUTrainer(m, traces)
	var hist []GRUEpoch
	bestNLL, bad := math.Inf(1), 0
	var bestParams []float32
	epochs := cfg.MaxEpochs
	if cfg.Schedule != nil {
		epochs = len(cfg.Schedule)
	}
	tr.lr = cfg.LearnRate
	for ep := 1; ep <= epochs; ep++ {
		t0 := time.Now()
		if cfg.Schedule != nil {
			tr.lr = cfg.Schedule[ep-1]
		}
		e := GRUEpoch{Epoch: ep, LearnRate: tr.lr, TrainNLL: tr.epoch()}
		if len(held) > 0 {
			m.prepare()
			e.HeldOutNLL = m.NLL(held)
		}
		e.Seconds = time.Since(t0).Seconds()
		hist = append(hist, e)
		if progress != nil {
			progress(e)
		}
		if math.IsNaN(e.TrainNLL) {
			return nil, hist, fmt.Errorf("gru model: training diverged in epoch %d (loss NaN); lower the learning rate", ep)
		}
		if len(held) == 0 {
			continue
		}
		if e.HeldOutNLL < bestNLL {
			bestNLL, bad = e.HeldOutNLL, 0
			bestParams = slices.Clone(m.p.all)
			continue
		}
		if bad++; cfg.Patience > 0 && bad >= cfg.Patience {
			break
		}
		if cfg.Decay > 0 {
			tr.lr *= cfg.Decay
		}
	}
	if bestParams != nil {
		copy(m.p.all, bestParams)
	}
	m.prepare()
	return m, hist, nil
}

func newGRUModel(traces [][]int, cfg GRUConfig) *GRUModel {
	freq := map[int]int{}
	maxSys := 0
	for _, t := range traces {
		for _, s := range t {
			freq[s]++
			maxSys = max(maxSys, s)
		}
	}
	nums := make([]int, 0, len(freq))
	for s := range freq {
		nums = append(nums, s)
	}
	slices.SortFunc(nums, func(a, b int) int {
		if freq[a] != freq[b] {
			return freq[b] - freq[a]
		}
		return a - b
	})
	m := &GRUModel{cfg: cfg, tokOf: make([]int32, maxSys+1), vin: firstToken + len(nums), vout: 1 + len(nums)}
	for i := range m.tokOf {
		m.tokOf[i] = tokUNK
	}
	for i, s := range nums {
		m.tokOf[s] = int32(firstToken + i)
	}
	e, h := cfg.Embed, cfg.Hidden
	m.p = bindGRUParams(make([]float32, gruParamCount(m.vin, m.vout, e, h)), m.vin, m.vout, e, h)
	// Embeddings uniform with unit variance; the layers uniform in
	// ±1/sqrt(fan-in), the usual recurrent-net initialisation.
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	uni := func(s []float32, a float64) {
		for i := range s {
			s[i] = float32((2*rng.Float64() - 1) * a)
		}
	}
	uni(m.p.emb, math.Sqrt(3))
	uni(m.p.wx, 1/math.Sqrt(float64(e)))
	uni(m.p.wh, 1/math.Sqrt(float64(h)))
	uni(m.p.bx, 1/math.Sqrt(float64(h)))
	uni(m.p.bh, 1/math.Sqrt(float64(h)))
	uni(m.p.wo, 1/math.Sqrt(float64(h)))
	m.prepare()
	return m
}

func (m *GRUModel) token(sys int) int32 {
	if sys >= 0 && sys < len(m.tokOf) {
		return m.tokOf[sys]
	}
	return tokUNK
}

// prepare derives the streaming tables from the weights.
func (m *GRUModel) prepare() {
	e, h := m.cfg.Embed, m.cfg.Hidden
	if m.xtab == nil {
		m.xtab = make([]float32, m.vin*3*h)
		m.h0 = make([]float32, h)
	}
	for id := range m.vin {
		matVec(m.xtab[id*3*h:(id+1)*3*h], m.p.wx, m.p.emb[id*e:(id+1)*e], m.p.bx)
	}
	clear(m.h0)
	gh := make([]float32, 3*h)
	m.advance(m.h0, tokBOS, gh)
}

// advance moves state h over input token id, in place; gh is scratch of
// length 3H.
func (m *GRUModel) advance(h []float32, id int32, gh []float32) {
	H := m.cfg.Hidden
	matVec(gh, m.p.wh, h, m.p.bh)
	gx := m.xtab[int(id)*3*H : (int(id)+1)*3*H]
	for j := range H {
		r := sigmoid(gx[j] + gh[j])
		z := sigmoid(gx[H+j] + gh[H+j])
		n := tanh32(gx[2*H+j] + r*gh[2*H+j])
		h[j] = (1-z)*n + z*h[j]
	}
}

// logProb is the floored log-probability of output id y given logits.
func (m *GRUModel) logProb(logits []float32, y int) float64 {
	mx := logits[0]
	for _, v := range logits[1:] {
		mx = max(mx, v)
	}
	var sum float64
	for _, v := range logits {
		sum += fastExp(float64(v - mx))
	}
	p := fastExp(float64(logits[y]-mx)) / sum
	eps := m.cfg.Floor
	return math.Log((1-eps)*p + eps/float64(m.vout))
}

// Config returns the model's hyperparameters.
func (m *GRUModel) Config() GRUConfig { return m.cfg }

// Vocab is the number of predictable tokens: known syscalls plus UNK.
func (m *GRUModel) Vocab() int { return m.vout }

// Params is the number of trained weights.
func (m *GRUModel) Params() int { return len(m.p.all) }

// Bytes is the memory the model holds: weights, streaming tables and the
// syscall table, 4 bytes each.
func (m *GRUModel) Bytes() int {
	return 4 * (len(m.p.all) + len(m.xtab) + len(m.h0) + len(m.tokOf))
}

// NLL is the mean negative log-likelihood, in nats per call, of traces
// under the model, each trace scored as a fresh stream. Traces are spread
// over cfg.Workers goroutines; the sum is taken in trace order, so the
// result does not depend on their number.
func (m *GRUModel) NLL(traces [][]int) float64 {
	sums := make([]float64, len(traces))
	n := 0
	for _, t := range traces {
		n += len(t)
	}
	parallelFor(len(traces), m.cfg.workers(), func(_, lo, hi int) {
		s := m.NewStream()
		for i := lo; i < hi; i++ {
			s.Reset()
			for _, c := range traces[i] {
				sums[i] += s.Observe(c)
			}
		}
	})
	if n == 0 {
		return 0
	}
	var sum float64
	for _, v := range sums {
		sum += v
	}
	return sum / float64(n)
}

// parallelFor splits [0,n) into contiguous parts, part w of them for
// goroutine w, up to workers goroutines.
func parallelFor(n, workers int, f func(w, lo, hi int)) {
	workers = max(1, min(workers, n))
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Go(func() { f(w, lo, hi) })
	}
	wg.Wait()
}

// GRUStream scores one thread's syscall stream under a GRUModel as it
// happens. Observe does not allocate. A GRUStream is not safe for
// concurrent use; make one per thread with GRUModel.NewStream.
type GRUStream struct {
	m      *GRUModel
	h      []float32
	gh     []float32
	logits []float32
	n      int
	sum    float64
}

// NewStream starts a stream at the beginning of a thread.
func (m *GRUModel) NewStream() *GRUStream {
	s := &GRUStream{m: m, h: make([]float32, m.cfg.Hidden), gh: make([]float32, 3*m.cfg.Hidden), logits: make([]float32, m.vout)}
	s.Reset()
	return s
}

// Reset restarts the stream, as for a new thread or after execve.
func (s *GRUStream) Reset() {
	copy(s.h, s.m.h0)
	s.n, s.sum = 0, 0
}

// Observe feeds the next syscall number and returns its negative
// log-likelihood in nats given the calls before it, then advances the
// state over it.
func (s *GRUStream) Observe(sys int) (nll float64) {
	m := s.m
	id := m.token(sys)
	matVec(s.logits, m.p.wo, s.h, m.p.bo)
	nll = -m.logProb(s.logits, int(id)-1)
	m.advance(s.h, id, s.gh)
	s.n++
	s.sum += nll
	return nll
}

// Events is the number of calls observed since the last Reset.
func (s *GRUStream) Events() int { return s.n }

// MeanNLL is the mean negative log-likelihood per call so far.
func (s *GRUStream) MeanNLL() float64 {
	if s.n == 0 {
		return 0
	}
	return s.sum / float64(s.n)
}

// Score is the figure compared with the threshold: the mean per-call
// negative log-likelihood of the whole stream so far, the score of Kim et
// al.'s LSTM language-model detector (2016). It was fixed before any
// evaluation on attack traces.
func (s *GRUStream) Score() float64 { return s.MeanNLL() }

// gruTrainer holds the training state: per-lane caches and gradients and
// Adam's moments.
type gruTrainer struct {
	m      *GRUModel
	traces [][]int
	rng    *rand.Rand
	lanes  []*gruLane
	grad   []float32
	am, av []float32 // Adam's first and second moments
	step   int
	lr     float64 // this epoch's step size
}

// gruLane is one stream of the minibatch: a concatenation of whole
// training traces, read BPTT calls per update, its state carried from one
// window to the next and reset to zero at each trace's start.
type gruLane struct {
	in, out []int32 // input ids and target output ids; in < 0 pads the lane's end
	start   []bool  // the call starts a trace: the state before it is zero
	h       []float32
	g       gruParams // this lane's gradient
	loss    float64
	count   int

	// per-step caches of the window, T x H (p: T x vout)
	hp, r, z, n, ghn, ho, p []float32
	// scratch
	gx, gh, dh, dhn, dgx, dgh []float32
}

func newGRUTrainer(m *GRUModel, traces [][]int) *gruTrainer {
	cfg := m.cfg
	P := len(m.p.all)
	tr := &gruTrainer{m: m, traces: traces, rng: rand.New(rand.NewPCG(cfg.Seed, 0x0bde7)),
		grad: make([]float32, P), am: make([]float32, P), av: make([]float32, P)}
	T, H := cfg.BPTT, cfg.Hidden
	for range cfg.Lanes {
		l := &gruLane{h: make([]float32, H),
			g:  bindGRUParams(make([]float32, P), m.vin, m.vout, cfg.Embed, H),
			hp: make([]float32, T*H), r: make([]float32, T*H), z: make([]float32, T*H), n: make([]float32, T*H),
			ghn: make([]float32, T*H), ho: make([]float32, T*H), p: make([]float32, T*m.vout),
			gx: make([]float32, 3*H), gh: make([]float32, 3*H), dh: make([]float32, H), dhn: make([]float32, H),
			dgx: make([]float32, 3*H), dgh: make([]float32, 3*H)}
		tr.lanes = append(tr.lanes, l)
	}
	return tr
}

// epoch shuffles the traces, deals them to the lanes (each to the lane
// with the fewest calls so far), and runs one update per window. It
// returns the mean per-call training loss.
func (tr *gruTrainer) epoch() float64 {
	longest := tr.deal()
	m, T := tr.m, tr.m.cfg.BPTT
	var loss float64
	var count int
	W := tr.m.cfg.workers()
	for off := 0; off < longest; off += T {
		var wg sync.WaitGroup
		for w := range min(W, len(tr.lanes)) {
			wg.Go(func() {
				for k := w; k < len(tr.lanes); k += W {
					tr.lanes[k].window(m, off, T)
				}
			})
		}
		wg.Wait()
		// Sum the lanes' gradients in lane order: the result does not
		// depend on how many goroutines computed them.
		clear(tr.grad)
		n := 0
		for _, l := range tr.lanes {
			axpy(1, l.g.all, tr.grad)
			n += l.count
			loss += l.loss
		}
		count += n
		if n > 0 {
			tr.update(n)
		}
	}
	if count == 0 {
		return 0
	}
	return loss / float64(count)
}

// deal lays the epoch's shuffled traces out on the lanes, pads every lane
// to the same whole number of windows and returns that length.
func (tr *gruTrainer) deal() int {
	m := tr.m
	order := tr.rng.Perm(len(tr.traces))
	for _, l := range tr.lanes {
		l.in, l.out, l.start = l.in[:0], l.out[:0], l.start[:0]
		clear(l.h)
	}
	for _, i := range order {
		l := slices.MinFunc(tr.lanes, func(a, b *gruLane) int { return len(a.in) - len(b.in) })
		prev := int32(tokBOS)
		for j, c := range tr.traces[i] {
			id := m.token(c)
			l.in, l.out, l.start = append(l.in, prev), append(l.out, id-1), append(l.start, j == 0)
			prev = id
		}
	}
	longest := 0
	for _, l := range tr.lanes {
		longest = max(longest, len(l.in))
	}
	T := m.cfg.BPTT
	longest = (longest + T - 1) / T * T
	for _, l := range tr.lanes {
		for len(l.in) < longest {
			l.in, l.out, l.start = append(l.in, -1), append(l.out, -1), append(l.start, false)
		}
	}
	return longest
}

// update scales the summed gradient to a per-call mean, clips its global
// norm and takes one Adam step.
func (tr *gruTrainer) update(n int) {
	cfg := tr.m.cfg
	scale := 1 / float64(n)
	var sq float64
	for _, g := range tr.grad {
		sq += float64(g) * float64(g)
	}
	if norm := math.Sqrt(sq) * scale; norm > cfg.Clip {
		scale *= cfg.Clip / norm
	}
	const b1, b2, eps = 0.9, 0.999, 1e-8
	tr.step++
	lr := tr.lr * math.Sqrt(1-math.Pow(b2, float64(tr.step))) / (1 - math.Pow(b1, float64(tr.step)))
	w := tr.m.p.all
	for i, g := range tr.grad {
		g *= float32(scale)
		tr.am[i] = b1*tr.am[i] + (1-b1)*g
		tr.av[i] = b2*tr.av[i] + (1-b2)*g*g
		w[i] -= float32(lr * float64(tr.am[i]) / (math.Sqrt(float64(tr.av[i])) + eps))
	}
}

// window runs the forward pass over calls [off, off+T) of the lane, then
// back-propagates the summed loss through them into l.g (cleared first).
// The gradient stops at the window's start (truncated BPTT) and at every
// trace's start.
func (l *gruLane) window(m *GRUModel, off, T int) {
	p, H, E, V := m.p, m.cfg.Hidden, m.cfg.Embed, m.vout
	clear(l.g.all)
	l.loss, l.count = 0, 0
	steps := 0
	for t := range T {
		k := off + t
		if l.in[k] < 0 {
			break
		}
		steps++
		if l.start[k] {
			clear(l.h)
		}
		hp := l.hp[t*H : (t+1)*H]
		copy(hp, l.h)
		id := int(l.in[k])
		matVec(l.gx, p.wx, p.emb[id*E:(id+1)*E], p.bx)
		matVec(l.gh, p.wh, hp, p.bh)
		r, z, n, ghn, ho := l.r[t*H:(t+1)*H], l.z[t*H:(t+1)*H], l.n[t*H:(t+1)*H], l.ghn[t*H:(t+1)*H], l.ho[t*H:(t+1)*H]
		for j := range H {
			r[j] = sigmoid(l.gx[j] + l.gh[j])
			z[j] = sigmoid(l.gx[H+j] + l.gh[H+j])
			ghn[j] = l.gh[2*H+j]
			n[j] = tanh32(l.gx[2*H+j] + r[j]*ghn[j])
			ho[j] = (1-z[j])*n[j] + z[j]*hp[j]
		}
		copy(l.h, ho)
		pr := l.p[t*V : (t+1)*V]
		matVec(pr, p.wo, ho, p.bo)
		l.loss -= softmaxInPlace(pr, int(l.out[k]))
		l.count++
	}

	g := l.g
	dh := l.dh
	clear(dh)
	for t := steps - 1; t >= 0; t-- {
		k := off + t
		hp, r, z, n, ghn, ho := l.hp[t*H:(t+1)*H], l.r[t*H:(t+1)*H], l.z[t*H:(t+1)*H], l.n[t*H:(t+1)*H], l.ghn[t*H:(t+1)*H], l.ho[t*H:(t+1)*H]
		// Output layer: dlogits = softmax - onehot(target).
		dl := l.p[t*V : (t+1)*V]
		dl[l.out[k]]--
		outerAdd(g.wo, dl, ho)
		axpy(1, dl, g.bo)
		matTVecAdd(dh, p.wo, dl)
		// The cell: h = (1-z)n + z hp, n = tanh(ax + r ghn), r and z sigmoids.
		for j := range H {
			dn := dh[j] * (1 - z[j])
			dz := dh[j] * (hp[j] - n[j])
			dan := dn * (1 - n[j]*n[j])
			dar := dan * ghn[j] * r[j] * (1 - r[j])
			daz := dz * z[j] * (1 - z[j])
			l.dgx[j], l.dgx[H+j], l.dgx[2*H+j] = dar, daz, dan
			l.dgh[j], l.dgh[H+j], l.dgh[2*H+j] = dar, daz, dan*r[j]
			dh[j] *= z[j] // the direct path to hp
		}
		id := int(l.in[k])
		outerAdd(g.wx, l.dgx, p.emb[id*E:(id+1)*E])
		axpy(1, l.dgx, g.bx)
		matTVecAdd(g.emb[id*E:(id+1)*E], p.wx, l.dgx)
		axpy(1, l.dgh, g.bh)
		if l.start[k] {
			clear(dh) // hp was the zero state: nothing flows further back
			continue
		}
		outerAdd(g.wh, l.dgh, hp)
		matTVecAdd(dh, p.wh, l.dgh)
	}
}

// softmaxInPlace turns logits into probabilities and returns the log of
// the target's.
func softmaxInPlace(x []float32, target int) float64 {
	mx := x[0]
	for _, v := range x[1:] {
		mx = max(mx, v)
	}
	lt := float64(x[target] - mx)
	var sum float64
	for i, v := range x {
		e := fastExp(float64(v - mx))
		x[i] = float32(e)
		sum += e
	}
	inv := float32(1 / sum)
	for i := range x {
		x[i] *= inv
	}
	return lt - math.Log(sum)
}

func sigmoid(x float32) float32 { return float32(1 / (1 + fastExp(-float64(x)))) }

// tanh32 is tanh through the sigmoid: tanh x = 2 sigmoid(2x) - 1.
func tanh32(x float32) float32 { return float32(2/(1+fastExp(-2*float64(x))) - 1) }

// fastExp is e^x to about 1e-8 relative error, several times cheaper
// than math.Exp: the softmax and the gates take hundreds of exponentials
// per call, which would otherwise cost more than the matrix products of a
// small model. x = k ln2 + r with |r| <= ln2/2; e^r by its Taylor
// polynomial to degree 7 (remainder below 6e-9); 2^k through the exponent
// bits. Results under 2^-1021 flush to 0, over 2^1023 saturate to +Inf.
func fastExp(x float64) float64 {
	const (
		log2e = 1.4426950408889634
		ln2hi = 6.93147180369123816490e-01
		ln2lo = 1.90821492927058770002e-10
	)
	switch {
	case x < -708:
		return 0
	case x > 709:
		return math.Inf(1)
	case x != x:
		return x
	}
	k := math.Floor(x*log2e + 0.5)
	r := x - k*ln2hi - k*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return p * math.Float64frombits(uint64(int64(k)+1023)<<52)
}

// matVec sets y = W x + b for W of len(y) rows and len(x) columns.
func matVec(y, w, x, b []float32) {
	c := len(x)
	for i := range y {
		y[i] = b[i] + dot(w[i*c:(i+1)*c], x)
	}
}

// matTVecAdd adds Wᵀ v to y, for W of len(v) rows and len(y) columns.
func matTVecAdd(y, w, v []float32) {
	c := len(y)
	for i, vi := range v {
		if vi != 0 {
			axpy(vi, w[i*c:(i+1)*c], y)
		}
	}
}

// outerAdd adds v xᵀ to G, for G of len(v) rows and len(x) columns.
func outerAdd(g, v, x []float32) {
	c := len(x)
	for i, vi := range v {
		if vi != 0 {
			axpy(vi, x, g[i*c:(i+1)*c])
		}
	}
}

// dot is the inner product, four independent sums so that the additions
// pipeline.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy adds alpha x to y.
func axpy(alpha float32, x, y []float32) {
	y = y[:len(x)]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		y[i] += alpha * x[i]
		y[i+1] += alpha * x[i+1]
		y[i+2] += alpha * x[i+2]
		y[i+3] += alpha * x[i+3]
	}
	for ; i < len(x); i++ {
		y[i] += alpha * x[i]
	}
}
