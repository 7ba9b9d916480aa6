package analyzer

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Token ids. BOS pads the context at the start of a thread's stream; UNK
// stands for every syscall number the training traces never contained (an
// unseen syscall gets the smoothed floor probability, so it is surprising,
// never impossible). Known syscall numbers take ids firstToken.. in order of
// decreasing training frequency; at most maxKnown of them are kept so that a
// token fits in a byte and an n-gram of up to 8 tokens packs into a uint64.
const (
	tokBOS     = 0
	tokUNK     = 1
	firstToken = 2
	tokSEP     = 255 // separates training traces inside the suffix automaton; never predicted
	maxKnown   = tokSEP - firstToken
	// MaxOrder is the largest n-gram order a SeqModel supports.
	MaxOrder = 8
)

// Smoothing selects how the n-gram LM spreads probability to unseen events.
type Smoothing int

const (
	// KneserNey is interpolated Kneser-Ney with one absolute discount per
	// model: the highest order uses counts, lower orders continuation counts.
	KneserNey Smoothing = iota
	// WittenBell interpolates each order with the next lower one by the
	// number of distinct continuations of the context.
	WittenBell
)

func (s Smoothing) String() string {
	switch s {
	case KneserNey:
		return "kn"
	case WittenBell:
		return "wb"
	}
	return "unknown"
}

// SeqConfig are the hyperparameters of a SeqModel. Order, Smoothing and
// Discount shape the language model and are chosen by held-out normal NLL;
// Window, MatchK and MatchPenalty shape the trace score and are fixed before
// any evaluation (see Stream.Score).
type SeqConfig struct {
	Order     int       // n of the n-gram LM, 1..MaxOrder
	Smoothing Smoothing //
	Discount  float64   // Kneser-Ney absolute discount, in (0, 1]; ignored for Witten-Bell

	Window       int     // events per window of the trace score; 0 scores the mean over the whole stream
	MatchK       int     // an event whose longest training match is shorter than this is "novel"
	MatchPenalty float64 // nats added to a novel event's surprise
}

// DefaultSeqConfig returns the score settings fixed a priori (window 32,
// a novel event is one whose last 2n calls never occurred together in
// training, penalised 1 nat) with the given LM settings.
func DefaultSeqConfig(order int, s Smoothing, discount float64) SeqConfig {
	return SeqConfig{Order: order, Smoothing: s, Discount: discount, Window: 32, MatchK: 2 * order, MatchPenalty: 1}
}

func (c SeqConfig) validate() error {
	if c.Order < 1 || c.Order > MaxOrder {
		return fmt.Errorf("seq model: order %d out of range 1..%d", c.Order, MaxOrder)
	}
	if c.Smoothing == KneserNey && (c.Discount <= 0 || c.Discount > 1) {
		return fmt.Errorf("seq model: Kneser-Ney discount %g out of range (0, 1]", c.Discount)
	}
	if c.Window < 0 {
		return fmt.Errorf("seq model: window %d must be 0 (whole stream) or more", c.Window)
	}
	return nil
}

type ctxStat struct {
	total uint32 // c(h), or for continuation orders N1+(. h .)
	types uint32 // N1+(h .): distinct tokens seen after h
}

// SeqModel is a smoothed n-gram language model over one program's syscall
// numbers plus a suffix automaton of its training traces. It is read-only
// after Train and safe for concurrent use by many Streams.
type SeqModel struct {
	cfg   SeqConfig
	tok   map[int]uint8 // syscall number -> token id
	vocab int           // predictable tokens: UNK + known syscalls

	// grams[k] maps a packed k-gram (context in the high bytes, predicted
	// token in the low byte) to its count (k = Order) or continuation count
	// (Kneser-Ney, k < Order); ctxs[k] maps its packed (k-1)-token context.
	grams [MaxOrder + 1]map[uint64]uint32
	ctxs  [MaxOrder + 1]map[uint64]ctxStat

	sam *suffixAutomaton
}

// Train builds a model from training traces of syscall numbers.
func Train(traces [][]int, cfg SeqConfig) (*SeqModel, error) {
	return train(traces, cfg, true)
}

// train builds the LM, and the suffix automaton when withSAM is set (the
// hyperparameter grid needs only the LM's held-out NLL).
func train(traces [][]int, cfg SeqConfig, withSAM bool) (*SeqModel, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	freq := map[int]int{}
	for _, t := range traces {
		for _, s := range t {
			freq[s]++
		}
	}
	nums := make([]int, 0, len(freq))
	for s := range freq {
		nums = append(nums, s)
	}
	slices.SortFunc(nums, func(a, b int) int {
		if c := cmp.Compare(freq[b], freq[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	if len(nums) > maxKnown {
		nums = nums[:maxKnown] // the rarest become UNK
	}
	m := &SeqModel{cfg: cfg, tok: make(map[int]uint8, len(nums)), vocab: 1 + len(nums)}
	for i, s := range nums {
		m.tok[s] = uint8(firstToken + i)
	}

	n := cfg.Order
	raw := make([]map[uint64]uint32, n+1)
	for k := 1; k <= n; k++ {
		raw[k] = map[uint64]uint32{}
	}
	for _, t := range traces {
		var hist uint64 // BOS padding is all zero bytes
		for _, s := range t {
			w := uint64(m.token(s))
			for k := 1; k <= n; k++ {
				raw[k][(hist&ctxMask(k-1))<<8|w]++
			}
			hist = hist<<8 | w
		}
	}
	for k := 1; k <= n; k++ {
		g := raw[k]
		if cfg.Smoothing == KneserNey && k < n {
			// N1+(. g): the number of distinct tokens seen before g.
			g = make(map[uint64]uint32, len(raw[k]))
			for key := range raw[k+1] {
				g[key&ctxMask(k)]++
			}
		}
		c := make(map[uint64]ctxStat, len(g)/2)
		for key, v := range g {
			st := c[key>>8]
			st.total += v
			st.types++
			c[key>>8] = st
		}
		m.grams[k], m.ctxs[k] = g, c
	}
	if withSAM {
		m.sam = buildSuffixAutomaton(traces, m)
	}
	return m, nil
}

// ctxMask keeps the low k bytes: the last k tokens of a packed history.
func ctxMask(k int) uint64 {
	if k >= 8 {
		return math.MaxUint64
	}
	return 1<<(8*uint(k)) - 1
}

func (m *SeqModel) token(sys int) uint8 {
	if t, ok := m.tok[sys]; ok {
		return t
	}
	return tokUNK
}

// Bytes estimates the memory the loaded model holds: map slots (key,
// value and control byte at the tables' average 3/4 load) and the suffix
// automaton's arrays. EvalADFA also measures it on the heap.
func (m *SeqModel) Bytes() int {
	slots := len(m.tok)
	for k := 1; k <= m.cfg.Order; k++ {
		slots += len(m.grams[k]) + len(m.ctxs[k])
	}
	b := slots * 17 * 4 / 3
	if m.sam != nil {
		b += m.sam.bytes()
	}
	return b
}

// Config returns the model's hyperparameters.
func (m *SeqModel) Config() SeqConfig { return m.cfg }

// Vocab is the number of predictable tokens: known syscalls plus UNK.
func (m *SeqModel) Vocab() int { return m.vocab }

// prob is P(w | hist), hist holding the previous tokens packed, most recent
// in the low byte. Each order interpolates with the one below it, starting
// from the uniform distribution over the vocabulary, so the result is
// positive and the distribution over all predictable tokens sums to 1.
func (m *SeqModel) prob(hist uint64, w uint8) float64 {
	p := 1 / float64(m.vocab)
	d := m.cfg.Discount
	for k := 1; k <= m.cfg.Order; k++ {
		ctx := hist & ctxMask(k-1)
		st, ok := m.ctxs[k][ctx]
		if !ok {
			break // a longer context containing this one is unseen too
		}
		c := float64(m.grams[k][ctx<<8|uint64(w)])
		total, types := float64(st.total), float64(st.types)
		if m.cfg.Smoothing == KneserNey {
			p = (max(c-d, 0) + d*types*p) / total
		} else {
			p = (c + types*p) / (total + types)
		}
	}
	return p
}

// NLL is the mean negative log-likelihood, in nats per call, of traces
// under the model (each trace scored as a fresh stream).
func (m *SeqModel) NLL(traces [][]int) float64 {
	var sum float64
	var n int
	for _, t := range traces {
		var hist uint64
		for _, s := range t {
			w := m.token(s)
			sum -= math.Log(m.prob(hist, w))
			hist = hist<<8 | uint64(w)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// Stream scores one thread's syscall stream as it happens. Observe does
// not allocate. A Stream is not safe for concurrent use; make one per
// thread with SeqModel.NewStream.
type Stream struct {
	m        *SeqModel
	hist     uint64
	samState int32
	match    int32

	n       int
	sumNLL  float64
	ring    []float64 // last Window per-event surprises
	ringSum float64
	maxWin  float64
	novel   int
}

// NewStream starts a stream at the beginning of a thread.
func (m *SeqModel) NewStream() *Stream {
	s := &Stream{m: m, ring: make([]float64, max(m.cfg.Window, 1))}
	s.Reset()
	return s
}

// Reset restarts the stream, as for a new thread or after execve.
func (s *Stream) Reset() {
	s.hist, s.samState, s.match = 0, 0, 0
	s.n, s.sumNLL, s.ringSum, s.maxWin, s.novel = 0, 0, 0, 0, 0
	clear(s.ring)
}

// Observe feeds the next syscall number and returns its surprise in nats:
// its negative log-probability under the n-gram LM, plus MatchPenalty when
// the longest suffix of the stream found in the training traces is shorter
// than min(MatchK, events so far), that is, when the recent calls form a
// sequence training never showed even if each n-gram of it was seen.
func (s *Stream) Observe(sys int) (surprise float64) {
	m := s.m
	w := m.token(sys)
	nll := -math.Log(m.prob(s.hist, w))
	s.hist = s.hist<<8 | uint64(w)
	s.samState, s.match = m.sam.step(s.samState, s.match, w)
	s.n++
	surprise = nll
	if int(s.match) < min(m.cfg.MatchK, s.n) {
		s.novel++
		surprise += m.cfg.MatchPenalty
	}
	s.sumNLL += nll
	if m.cfg.Window == 0 {
		s.ringSum += surprise // the whole stream's sum
		return surprise
	}
	i := (s.n - 1) % len(s.ring)
	s.ringSum += surprise - s.ring[i]
	s.ring[i] = surprise
	if s.n >= len(s.ring) {
		if mean := s.ringSum / float64(len(s.ring)); mean > s.maxWin {
			s.maxWin = mean
		}
	}
	return surprise
}

// MatchLen is the length of the longest suffix of the stream that occurs
// in some training trace.
func (s *Stream) MatchLen() int { return int(s.match) }

// Events is the number of calls observed since the last Reset.
func (s *Stream) Events() int { return s.n }

// MeanNLL is the LM's mean negative log-likelihood per call so far.
func (s *Stream) MeanNLL() float64 {
	if s.n == 0 {
		return 0
	}
	return s.sumNLL / float64(s.n)
}

// NovelFraction is the fraction of calls so far that were novel (see Observe).
func (s *Stream) NovelFraction() float64 {
	if s.n == 0 {
		return 0
	}
	return float64(s.novel) / float64(s.n)
}

// Score is the thread's accumulated surprise, the figure compared with the
// threshold: the largest mean surprise over any Window consecutive calls
// (the mean over all calls while fewer than Window have been seen). A
// windowed maximum, not the whole-trace mean, because an attack is a burst
// inside otherwise ordinary activity and a long normal prefix must not
// dilute it. Once Window calls have been seen it never decreases, so a
// thread flagged once stays flagged.
//
// With Window 0 the score is the mean surprise over the whole stream.
func (s *Stream) Score() float64 {
	if s.n < len(s.ring) || s.m.cfg.Window == 0 {
		if s.n == 0 {
			return 0
		}
		return s.ringSum / float64(s.n)
	}
	return s.maxWin
}
