package analyzer

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// This file is the offline evaluation on ADFA-LD (Creech & Hu 2013). It is
// the one part of the package that reads files: the model code never does.

// ADFATrace is one ADFA-LD trace: i386 syscall numbers of one process.
type ADFATrace struct {
	Name   string // path relative to the dataset directory
	Family string // attack family (folder name without _run); "" for normal traces
	Calls  []int
}

// ADFA is the dataset's three folders, each in the dataset's own order:
// file names sorted with their digit runs compared as numbers.
type ADFA struct {
	Train      []ADFATrace // Training_Data_Master (normal)
	Validation []ADFATrace // Validation_Data_Master (normal)
	Attack     []ADFATrace // Attack_Data_Master/<Family>_<run>/ (attack)
}

// LoadADFA reads an ADFA-LD directory.
func LoadADFA(dir string) (*ADFA, error) {
	var d ADFA
	var err error
	if d.Train, err = loadADFAFolder(dir, "Training_Data_Master", ""); err != nil {
		return nil, err
	}
	if d.Validation, err = loadADFAFolder(dir, "Validation_Data_Master", ""); err != nil {
		return nil, err
	}
	runs, err := os.ReadDir(filepath.Join(dir, "Attack_Data_Master"))
	if err != nil {
		return nil, fmt.Errorf("load ADFA-LD: %w (want the folder holding Training_Data_Master, Validation_Data_Master and Attack_Data_Master)", err)
	}
	var names []string
	for _, r := range runs {
		if r.IsDir() {
			names = append(names, r.Name())
		}
	}
	slices.SortFunc(names, naturalCompare)
	for _, run := range names {
		fam := run
		if i := strings.LastIndexByte(run, '_'); i > 0 {
			if _, err := strconv.Atoi(run[i+1:]); err == nil {
				fam = run[:i]
			}
		}
		ts, err := loadADFAFolder(dir, filepath.Join("Attack_Data_Master", run), fam)
		if err != nil {
			return nil, err
		}
		d.Attack = append(d.Attack, ts...)
	}
	if len(d.Train) == 0 || len(d.Validation) == 0 || len(d.Attack) == 0 {
		return nil, fmt.Errorf("load ADFA-LD %s: %d training, %d validation, %d attack traces; every folder needs at least one", dir, len(d.Train), len(d.Validation), len(d.Attack))
	}
	return &d, nil
}

func loadADFAFolder(dir, sub, family string) ([]ADFATrace, error) {
	ents, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil {
		return nil, fmt.Errorf("load ADFA-LD: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".txt") {
			names = append(names, e.Name())
		}
	}
	slices.SortFunc(names, naturalCompare)
	out := make([]ADFATrace, 0, len(names))
	for _, n := range names {
		rel := filepath.Join(sub, n)
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			return nil, fmt.Errorf("load ADFA-LD: %w", err)
		}
		calls, err := parseTrace(b)
		if err != nil {
			return nil, fmt.Errorf("load ADFA-LD %s: %w", rel, err)
		}
		out = append(out, ADFATrace{Name: rel, Family: family, Calls: calls})
	}
	return out, nil
}

func parseTrace(b []byte) ([]int, error) {
	fields := strings.Fields(string(b))
	calls := make([]int, len(fields))
	for i, f := range fields {
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("call %d: %q is not a syscall number", i+1, f)
		}
		calls[i] = v
	}
	return calls, nil
}

// naturalCompare orders names with digit runs compared as numbers, so
// Adduser_2 comes before Adduser_10.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da > 0 && db > 0 {
			na, _ := strconv.ParseUint(strings.TrimLeft(a[:da], "0")+"0", 10, 64)
			nb, _ := strconv.ParseUint(strings.TrimLeft(b[:db], "0")+"0", 10, 64)
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitPrefix(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// GridRow is one language-model setting tried, with its held-out NLL.
type GridRow struct {
	Order        int     `json:"order"`
	Smoothing    string  `json:"smoothing"`
	Discount     float64 `json:"discount,omitempty"`
	HeldOutNLL   float64 `json:"heldout_nll"` // nats per call on every 5th training trace
	TrainSeconds float64 `json:"train_seconds"`
}

// ScoreVariant is a trace score evaluated after the fact on the same
// per-event figures, for the ablation table. None of them is used to
// choose anything: the score is fixed before the evaluation (Stream.Score).
type ScoreVariant struct {
	Name   string  `json:"name"`
	AUC    float64 `json:"auc"`
	Chosen bool    `json:"chosen,omitempty"`
}

// ADFAReport holds the figures of one evaluation run.
type ADFAReport struct {
	// The fixed score's figures: AUC of all Validation normals vs all
	// attacks with its bootstrap interval, detection at thresholds
	// calibrated on even Validation files and tested on odd ones, ROC
	// points, FAR at 90% DR, the deduplicated AUC, per-family detection.
	DetectionFigures

	TrainSeconds float64 `json:"train_seconds"` // final model on all of Training_Data_Master
	GridSeconds  float64 `json:"grid_seconds"`
	P50EventNS   float64 `json:"p50_event_ns"` // Stream.Observe over the Validation stream
	P99EventNS   float64 `json:"p99_event_ns"`
	Events       int     `json:"events"`
	ModelBytes   int     `json:"model_bytes"`      // estimate from the structures' sizes
	ModelHeap    int     `json:"model_heap_bytes"` // heap growth while training the final model

	Grid     []GridRow      `json:"grid"`
	Chosen   ChosenConfig   `json:"chosen"`
	Variants []ScoreVariant `json:"score_variants"`

	Normals     int `json:"normals"`
	Attacks     int `json:"attacks"`
	TrainTraces int `json:"train_traces"`

	GRU *GRUReport `json:"gru,omitempty"` // with EvalOptions.Model = ModelGRU
}

// ChosenConfig is the configuration the evaluation settled on.
type ChosenConfig struct {
	Order        int     `json:"order"`
	Smoothing    string  `json:"smoothing"`
	Discount     float64 `json:"discount,omitempty"`
	HeldOutNLL   float64 `json:"heldout_nll"`
	Score        string  `json:"score"`
	Window       int     `json:"window"`
	MatchK       int     `json:"match_k"`
	MatchPenalty float64 `json:"match_penalty"`
}

// EvalOptions narrow an evaluation; the zero value is the full protocol.
type EvalOptions struct {
	Orders     []int // LM orders to try; default 2..8
	Bootstrap  int   // resamples for the AUC interval; default 1000
	NoLatency  bool  // skip per-event timing
	ProgressTo io.Writer

	Model   EvalModel   // ModelGRU adds the GRU LM and the ensemble (gru_eval.go)
	GRUGrid []GRUConfig // GRU settings to try; default DefaultGRUGrid()
	// GRUSeeds > 1 also trains the chosen setting from GRUSeeds-1 more
	// seeds and reports their seed ensemble (gru_eval.go).
	GRUSeeds int
}

// EvalADFA runs the protocol of archangel's analyzer issue on d:
//
//   - the LM hyperparameters (order, smoothing, discount) are those with the
//     lowest NLL on every 5th Training file, the LM trained on the other
//     four fifths; no Validation or attack trace is used to choose them;
//   - the score (Stream.Score: window 32, novelty 2n, 1 nat) was fixed
//     before any evaluation; the ablation shows other scores' AUC, chosen by
//     nothing;
//   - the final model is trained on all of Training_Data_Master;
//   - thresholds are calibrated on even-indexed Validation files at 1, 5 and
//     10% FPR and tested on odd-indexed files and all attacks;
//   - AUC is over all Validation normals vs all attacks, with a bootstrap
//     95% interval (stratified, fixed seed).
func EvalADFA(d *ADFA, opt EvalOptions) (*ADFAReport, error) {
	orders := opt.Orders
	if len(orders) == 0 {
		orders = []int{2, 3, 4, 5, 6, 7, 8}
	}
	nboot := opt.Bootstrap
	if nboot == 0 {
		nboot = 1000
	}
	progress := opt.ProgressTo
	if progress == nil {
		progress = io.Discard
	}
	r := &ADFAReport{Normals: len(d.Validation), Attacks: len(d.Attack), TrainTraces: len(d.Train)}

	// 1. Hyperparameters by held-out normal NLL.
	var fit, held [][]int
	for i, t := range d.Train {
		if i%5 == 4 {
			held = append(held, t.Calls)
		} else {
			fit = append(fit, t.Calls)
		}
	}
	type lm struct {
		s Smoothing
		d float64
	}
	smooths := []lm{{WittenBell, 0}, {KneserNey, 0.5}, {KneserNey, 0.75}, {KneserNey, 0.9}}
	gridStart := time.Now()
	best := -1
	for _, n := range orders {
		for _, sm := range smooths {
			cfg := DefaultSeqConfig(n, sm.s, sm.d)
			t0 := time.Now()
			m, err := train(fit, cfg, false)
			if err != nil {
				return nil, err
			}
			row := GridRow{Order: n, Smoothing: sm.s.String(), Discount: sm.d, HeldOutNLL: m.NLL(held), TrainSeconds: time.Since(t0).Seconds()}
			r.Grid = append(r.Grid, row)
			if best < 0 || row.HeldOutNLL < r.Grid[best].HeldOutNLL {
				best = len(r.Grid) - 1
			}
			fmt.Fprintf(progress, "grid n=%d %s d=%.2f heldout_nll=%.4f\n", n, row.Smoothing, row.Discount, row.HeldOutNLL)
		}
	}
	r.GridSeconds = time.Since(gridStart).Seconds()
	g := r.Grid[best]
	sm := WittenBell
	if g.Smoothing == KneserNey.String() {
		sm = KneserNey
	}
	cfg := DefaultSeqConfig(g.Order, sm, g.Discount)
	r.Chosen = ChosenConfig{Order: g.Order, Smoothing: g.Smoothing, Discount: g.Discount, HeldOutNLL: g.HeldOutNLL,
		Score: "max over windows of the mean per-call surprise (NLL + penalty if novel)", Window: cfg.Window, MatchK: cfg.MatchK, MatchPenalty: cfg.MatchPenalty}

	// 2. The final model on all of Training_Data_Master.
	all := make([][]int, len(d.Train))
	for i, t := range d.Train {
		all[i] = t.Calls
	}
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	t0 := time.Now()
	m, err := Train(all, cfg)
	if err != nil {
		return nil, err
	}
	r.TrainSeconds = time.Since(t0).Seconds()
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	r.ModelHeap = int(int64(ms1.HeapAlloc) - int64(ms0.HeapAlloc))
	r.ModelBytes = m.Bytes()
	fmt.Fprintf(progress, "trained n=%d %s in %.2fs\n", cfg.Order, sm, r.TrainSeconds)

	// 3. Scores, with per-event latency on the Validation stream.
	s := m.NewStream()
	var lat []int64
	if !opt.NoLatency {
		lat = make([]int64, 0, 1<<21)
	}
	scoreAll := func(ts []ADFATrace, timed bool) []float64 {
		out := make([]float64, len(ts))
		for i, t := range ts {
			s.Reset()
			for _, c := range t.Calls {
				if timed {
					t0 := time.Now()
					s.Observe(c)
					lat = append(lat, int64(time.Since(t0)))
				} else {
					s.Observe(c)
				}
			}
			out[i] = s.Score()
		}
		return out
	}
	normal := scoreAll(d.Validation, !opt.NoLatency)
	attack := scoreAll(d.Attack, false)
	if len(lat) > 0 {
		slices.Sort(lat)
		r.P50EventNS = float64(lat[len(lat)/2])
		r.P99EventNS = float64(lat[len(lat)*99/100])
		r.Events = len(lat)
	}

	// 4. Figures.
	r.DetectionFigures = detectionFigures(d, normal, attack, nboot)

	r.Variants = ablation(m, d, r.AUC)
	if opt.Model == ModelGRU {
		if r.GRU, err = evalGRU(d, m, opt, progress); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func above(xs []float64, thr float64) float64 {
	n := 0
	for _, x := range xs {
		if x > thr {
			n++
		}
	}
	return float64(n) / float64(len(xs))
}

// ThresholdAtFPR returns the smallest threshold t among the scores such
// that at most a fraction f of normal scores exceed t (a score above the
// threshold is flagged).
func ThresholdAtFPR(normal []float64, f float64) float64 {
	s := slices.Clone(normal)
	slices.Sort(s)
	k := int(math.Floor(f * float64(len(s)))) // how many may lie above
	return s[len(s)-1-k]
}

// FARAtDR is the fraction of normal scores at or above the highest
// threshold that still flags a fraction dr of the attack scores.
func FARAtDR(normal, attack []float64, dr float64) float64 {
	a := slices.Clone(attack)
	slices.Sort(a)
	need := int(math.Ceil(dr*float64(len(a)) - 1e-9)) // attacks that must be flagged
	thr := a[len(a)-max(need, 1)]
	n := 0
	for _, x := range normal {
		if x >= thr {
			n++
		}
	}
	return float64(n) / float64(len(normal))
}

// AUC is the area under the ROC curve of attack (positive) vs normal
// scores: the Mann-Whitney probability that an attack scores above a
// normal trace, ties counting one half.
func AUC(normal, attack []float64) float64 {
	p := newAUCPool(normal, attack)
	return p.auc(nil, nil)
}

// BootstrapAUC is the 95% percentile interval of the AUC over resamples
// that redraw normals and attacks separately with replacement. The seed
// fixes the resamples.
func BootstrapAUC(normal, attack []float64, resamples int, seed uint64) [2]float64 {
	p := newAUCPool(normal, attack)
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	wn, wa := make([]float64, len(normal)), make([]float64, len(attack))
	aucs := make([]float64, resamples)
	for b := range aucs {
		clear(wn)
		clear(wa)
		for range normal {
			wn[rng.IntN(len(normal))]++
		}
		for range attack {
			wa[rng.IntN(len(attack))]++
		}
		aucs[b] = p.auc(wn, wa)
	}
	slices.Sort(aucs)
	lo := aucs[int(math.Floor(0.025*float64(resamples-1)))]
	hi := aucs[int(math.Ceil(0.975*float64(resamples-1)))]
	return [2]float64{lo, hi}
}

// aucPool is both samples sorted once; auc weighs each element (a
// bootstrap multiplicity, or 1 when the weights are nil) in one pass.
type aucPool struct {
	items []aucItem
}

type aucItem struct {
	v      float64
	attack bool
	idx    int
}

func newAUCPool(normal, attack []float64) *aucPool {
	p := &aucPool{items: make([]aucItem, 0, len(normal)+len(attack))}
	for i, v := range normal {
		p.items = append(p.items, aucItem{v, false, i})
	}
	for i, v := range attack {
		p.items = append(p.items, aucItem{v, true, i})
	}
	slices.SortFunc(p.items, func(a, b aucItem) int { return cmp.Compare(a.v, b.v) })
	return p
}

func (p *aucPool) auc(wn, wa []float64) float64 {
	var below, sum, totN, totA float64 // below: normal weight strictly below the current group
	items := p.items
	for i := 0; i < len(items); {
		j := i
		var gn, ga float64
		for ; j < len(items) && items[j].v == items[i].v; j++ {
			w := 1.0
			if items[j].attack {
				if wa != nil {
					w = wa[items[j].idx]
				}
				ga += w
			} else {
				if wn != nil {
					w = wn[items[j].idx]
				}
				gn += w
			}
		}
		sum += ga * (below + gn/2)
		below += gn
		totN += gn
		totA += ga
		i = j
	}
	if totN == 0 || totA == 0 {
		return math.NaN()
	}
	return sum / (totN * totA)
}

// ablation evaluates other trace scores on the same model, after the fact.
func ablation(m *SeqModel, d *ADFA, chosenAUC float64) []ScoreVariant {
	type ev struct {
		nll   []float64
		novel []bool
	}
	events := func(ts []ADFATrace) []ev {
		out := make([]ev, len(ts))
		s := m.NewStream()
		for i, t := range ts {
			s.Reset()
			e := ev{make([]float64, len(t.Calls)), make([]bool, len(t.Calls))}
			for j, c := range t.Calls {
				before := s.novel
				e.nll[j] = s.Observe(c)
				e.novel[j] = s.novel != before
				if e.novel[j] {
					e.nll[j] -= m.cfg.MatchPenalty
				}
			}
			out[i] = e
		}
		return out
	}
	ne, ae := events(d.Validation), events(d.Attack)
	wmax := func(x []float64, w int) float64 {
		if len(x) <= w {
			return mean(x)
		}
		var sum float64
		for _, v := range x[:w] {
			sum += v
		}
		best := sum
		for i := w; i < len(x); i++ {
			sum += x[i] - x[i-w]
			best = max(best, sum)
		}
		return best / float64(w)
	}
	surprise := func(e ev, pen float64) []float64 {
		x := slices.Clone(e.nll)
		for i, nv := range e.novel {
			if nv {
				x[i] += pen
			}
		}
		return x
	}
	variants := []struct {
		name string
		f    func(ev) float64
	}{
		{"mean NLL (plain n-gram LM)", func(e ev) float64 { return mean(e.nll) }},
		{"novel fraction (match < 2n)", func(e ev) float64 { return mean(surprise(ev{make([]float64, len(e.nll)), e.novel}, 1)) }},
		{"mean surprise", func(e ev) float64 { return mean(surprise(e, m.cfg.MatchPenalty)) }},
		{"max window-10 mean NLL", func(e ev) float64 { return wmax(e.nll, 10) }},
		{"max window-32 mean NLL", func(e ev) float64 { return wmax(e.nll, 32) }},
		{"max window-100 mean NLL", func(e ev) float64 { return wmax(e.nll, 100) }},
		{"max window-10 mean surprise", func(e ev) float64 { return wmax(surprise(e, m.cfg.MatchPenalty), 10) }},
		{"max window-100 mean surprise", func(e ev) float64 { return wmax(surprise(e, m.cfg.MatchPenalty), 100) }},
	}
	out := []ScoreVariant{{Name: fmt.Sprintf("max window-%d mean surprise (the score)", m.cfg.Window), AUC: chosenAUC, Chosen: true}}
	for _, v := range variants {
		ns, as := make([]float64, len(ne)), make([]float64, len(ae))
		for i, e := range ne {
			ns[i] = v.f(e)
		}
		for i, e := range ae {
			as[i] = v.f(e)
		}
		out = append(out, ScoreVariant{Name: v.name, AUC: AUC(ns, as)})
	}
	return out
}

func mean(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// RunADFAEval loads the ADFA-LD directory dir, runs EvalADFA and writes
// the report to w: a table, or with asJSON one JSON object.
func RunADFAEval(dir string, w io.Writer, asJSON bool) error {
	return RunADFAEvalOptions(dir, w, asJSON, EvalOptions{})
}

// RunADFAEvalOptions is RunADFAEval with options.
func RunADFAEvalOptions(dir string, w io.Writer, asJSON bool, opt EvalOptions) error {
	d, err := LoadADFA(dir)
	if err != nil {
		return err
	}
	r, err := EvalADFA(d, opt)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(r)
	}
	return r.WriteTable(w)
}

// WriteTable writes the report for people.
func (r *ADFAReport) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	pct := func(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }
	fmt.Fprintf(tw, "ADFA-LD: trained on %d Training traces; %d Validation normals vs %d attacks\n\n", r.TrainTraces, r.Normals, r.Attacks)
	fmt.Fprintf(tw, "LM grid (held-out NLL on every 5th Training file; lowest wins)\n")
	fmt.Fprintf(tw, "order\tsmoothing\tdiscount\theld-out NLL (nats)\ttrain s\t\n")
	for _, g := range r.Grid {
		mark := ""
		if g.Order == r.Chosen.Order && g.Smoothing == r.Chosen.Smoothing && g.Discount == r.Chosen.Discount {
			mark = "  <- chosen"
		}
		fmt.Fprintf(tw, "%d\t%s\t%.2f\t%.4f\t%.2f\t%s\n", g.Order, g.Smoothing, g.Discount, g.HeldOutNLL, g.TrainSeconds, mark)
	}
	fmt.Fprintf(tw, "\nscore: %s, window %d, novel if match < %d, penalty %.1f nat (fixed a priori)\n\n", r.Chosen.Score, r.Chosen.Window, r.Chosen.MatchK, r.Chosen.MatchPenalty)
	fmt.Fprintf(tw, "figure\tvalue\t\n")
	fmt.Fprintf(tw, "ROC AUC (all normals vs attacks)\t%.4f [%.4f, %.4f] 95%% bootstrap\t\n", r.AUC, r.AUCCI[0], r.AUCCI[1])
	fmt.Fprintf(tw, "ROC AUC deduplicated (%d normals, %d attacks)\t%.4f\t\n", r.DedupNormals, r.DedupAttacks, r.AUCDedup)
	fmt.Fprintf(tw, "FAR at 90%% DR\t%s\t\n", pct(r.FARAt90DR))
	for _, x := range []struct {
		f          string
		dr, tf, rc float64
	}{{"1%", r.DRAt1FPR, r.TestFPRAt1, r.ROCDRAt1FPR}, {"5%", r.DRAt5FPR, r.TestFPRAt5, r.ROCDRAt5FPR}, {"10%", r.DRAt10FPR, r.TestFPRAt10, r.ROCDRAt10FPR}} {
		fmt.Fprintf(tw, "DR at %s FPR (calibrated on even files)\t%s (test FPR on odd files %s; ROC point %s)\t\n", x.f, pct(x.dr), pct(x.tf), pct(x.rc))
	}
	fams := make([]string, 0, len(r.PerFamily))
	for f := range r.PerFamily {
		fams = append(fams, f)
	}
	slices.Sort(fams)
	for _, f := range fams {
		fmt.Fprintf(tw, "DR %s (%d traces, 5%% FPR threshold)\t%s\t\n", f, r.FamilySizes[f], pct(r.PerFamily[f]))
	}
	fmt.Fprintf(tw, "training time (final model)\t%.2f s (grid %.1f s)\t\n", r.TrainSeconds, r.GridSeconds)
	fmt.Fprintf(tw, "per-event latency p50 / p99\t%.0f ns / %.0f ns over %d events\t\n", r.P50EventNS, r.P99EventNS, r.Events)
	fmt.Fprintf(tw, "model memory\t%.1f MiB estimated, %.1f MiB heap growth\t\n", float64(r.ModelBytes)/(1<<20), float64(r.ModelHeap)/(1<<20))
	fmt.Fprintf(tw, "\nscore ablation (after the fact; used to choose nothing)\n")
	fmt.Fprintf(tw, "score\tAUC\t\n")
	for _, v := range r.Variants {
		fmt.Fprintf(tw, "%s\t%.4f\t\n", v.Name, v.AUC)
	}
	if err := tw.Flush(); err != nil || r.GRU == nil {
		return err
	}
	return r.GRU.WriteTable(w, r.Chosen.HeldOutNLL)
}
