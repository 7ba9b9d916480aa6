package analyzer

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// This file adds the GRU language model to the ADFA-LD evaluation
// (EvalOptions.Model = ModelGRU). Its protocol mirrors the n-gram's:
// hyperparameters by held-out NLL on every 5th Training file, the final
// model on all of Training_Data_Master, thresholds on even-indexed
// Validation files. Two scores, both fixed before any attack trace was
// scored:
//
//   - gru: the trace's mean per-call NLL under the GRU (GRUStream.Score),
//     the score of Kim et al.'s LSTM language-model detector (2016);
//   - ensemble: the mean of the GRU's and the n-gram's mean per-call NLL,
//     each first standardised by the mean and standard deviation of its
//     own scores on the even-indexed Validation files (the calibration
//     half), equal weights.

// EvalModel selects the models EvalADFA evaluates.
type EvalModel int

const (
	// ModelNGram is the n-gram LM with its windowed surprise score alone.
	ModelNGram EvalModel = iota
	// ModelGRU adds the GRU LM and the GRU + n-gram ensemble (ADFAReport.GRU).
	ModelGRU
)

func (m EvalModel) String() string {
	switch m {
	case ModelNGram:
		return "ngram"
	case ModelGRU:
		return "gru"
	}
	return fmt.Sprintf("EvalModel(%d)", int(m))
}

// UnmarshalText accepts "ngram" and "gru".
func (m *EvalModel) UnmarshalText(b []byte) error {
	switch string(b) {
	case "ngram":
		*m = ModelNGram
	case "gru":
		*m = ModelGRU
	default:
		return fmt.Errorf("unknown model %q (want ngram or gru)", b)
	}
	return nil
}

// DefaultGRUGrid is the GRU settings EvalADFA tries: three sizes (embed
// 16/hidden 32, 32/64, 32/128) by three Adam step sizes (0.001, 0.003,
// 0.01), the rest as DefaultGRUConfig. The sizes keep one training run
// within a few minutes on a shared two-core machine.
func DefaultGRUGrid() []GRUConfig {
	var g []GRUConfig
	for _, sz := range [][2]int{{16, 32}, {32, 64}, {32, 128}} {
		for _, lr := range []float64{0.001, 0.003, 0.01} {
			g = append(g, DefaultGRUConfig(sz[0], sz[1], lr))
		}
	}
	return g
}

// GRUGridRow is one GRU setting tried, with its best held-out NLL.
type GRUGridRow struct {
	Embed        int        `json:"embed"`
	Hidden       int        `json:"hidden"`
	LearnRate    float64    `json:"learn_rate"`
	Epochs       int        `json:"epochs"`      // the epoch with the lowest held-out NLL
	HeldOutNLL   float64    `json:"heldout_nll"` // nats per call on every 5th training trace
	TrainSeconds float64    `json:"train_seconds"`
	History      []GRUEpoch `json:"history"`
}

// DetectionFigures are one score's figures on ADFA-LD, the same for every
// model (detectionFigures): the n-gram's are ADFAReport's top-level JSON
// fields, the GRU's and the ensembles' the same names in their objects.
type DetectionFigures struct {
	AUC          float64            `json:"auc"`
	AUCCI        [2]float64         `json:"auc_ci"`
	DRAt1FPR     float64            `json:"dr_at_1fpr"`
	DRAt5FPR     float64            `json:"dr_at_5fpr"`
	DRAt10FPR    float64            `json:"dr_at_10fpr"`
	TestFPRAt1   float64            `json:"test_fpr_at_1fpr"`
	TestFPRAt5   float64            `json:"test_fpr_at_5fpr"`
	TestFPRAt10  float64            `json:"test_fpr_at_10fpr"`
	ROCDRAt1FPR  float64            `json:"roc_dr_at_1fpr"`
	ROCDRAt5FPR  float64            `json:"roc_dr_at_5fpr"`
	ROCDRAt10FPR float64            `json:"roc_dr_at_10fpr"`
	FARAt90DR    float64            `json:"far_at_90dr"`
	AUCDedup     float64            `json:"auc_dedup"`
	DedupNormals int                `json:"dedup_normals"`
	DedupAttacks int                `json:"dedup_attacks"`
	Threshold    float64            `json:"threshold"`
	PerFamily    map[string]float64 `json:"per_family"`
	FamilySizes  map[string]int     `json:"family_sizes"`
}

// GRUReport is the GRU's part of an ADFAReport.
type GRUReport struct {
	Score string `json:"score"`
	DetectionFigures

	Grid        []GRUGridRow `json:"grid"`
	Chosen      GRUGridRow   `json:"chosen"`
	GridSeconds float64      `json:"grid_seconds"`
	// The final model: Chosen's settings and epoch count on all of
	// Training_Data_Master.
	TrainSeconds float64 `json:"train_seconds"`
	Params       int     `json:"params"`
	ModelBytes   int     `json:"model_bytes"`
	// GRUStream.Observe over the Validation stream, on Workers goroutines
	// at once.
	P50EventNS float64 `json:"p50_event_ns"`
	P99EventNS float64 `json:"p99_event_ns"`
	Events     int     `json:"events"`
	Workers    int     `json:"workers"`

	Ensemble EnsembleReport `json:"ensemble"`
	// SeedEnsemble: the chosen setting trained from Seeds seeds (the
	// final model's and Seeds-1 more), the trace's score the mean of
	// their mean per-call NLLs. Declared before it was first run; absent
	// unless EvalOptions.GRUSeeds > 1.
	SeedEnsemble *SeedEnsembleReport `json:"seed_ensemble,omitempty"`
}

// SeedEnsembleReport is the seed ensemble's figures.
type SeedEnsembleReport struct {
	Score        string  `json:"score"`
	Seeds        int     `json:"seeds"`
	TrainSeconds float64 `json:"train_seconds"` // the extra models
	DetectionFigures
}

// EnsembleReport is the second pre-declared score's figures.
type EnsembleReport struct {
	Score string `json:"score"`
	DetectionFigures
}

// evalGRU runs the GRU half of EvalADFA; ngram is the final n-gram model,
// whose mean NLL the ensemble uses.
func evalGRU(d *ADFA, ngram *SeqModel, opt EvalOptions, progress io.Writer) (*GRUReport, error) {
	grid := opt.GRUGrid
	if len(grid) == 0 {
		grid = DefaultGRUGrid()
	}
	nboot := opt.Bootstrap
	if nboot == 0 {
		nboot = 1000
	}
	r := &GRUReport{Score: "mean per-call NLL of the whole trace under the GRU LM (fixed a priori; Kim et al. 2016)"}

	// 1. Hyperparameters by held-out NLL, the n-gram's split.
	var fit, held [][]int
	for i, t := range d.Train {
		if i%5 == 4 {
			held = append(held, t.Calls)
		} else {
			fit = append(fit, t.Calls)
		}
	}
	gridStart := time.Now()
	best := -1
	for _, cfg := range grid {
		t0 := time.Now()
		_, hist, err := TrainGRU(fit, held, cfg, func(e GRUEpoch) {
			fmt.Fprintf(progress, "gru e=%d h=%d lr=%g epoch %d at %g: train %.4f heldout %.4f (%.1fs)\n", cfg.Embed, cfg.Hidden, cfg.LearnRate, e.Epoch, e.LearnRate, e.TrainNLL, e.HeldOutNLL, e.Seconds)
		})
		if err != nil {
			return nil, err
		}
		row := GRUGridRow{Embed: cfg.Embed, Hidden: cfg.Hidden, LearnRate: cfg.LearnRate, HeldOutNLL: math.Inf(1), TrainSeconds: time.Since(t0).Seconds(), History: hist}
		for _, e := range hist {
			if e.HeldOutNLL < row.HeldOutNLL {
				row.HeldOutNLL, row.Epochs = e.HeldOutNLL, e.Epoch
			}
		}
		r.Grid = append(r.Grid, row)
		if best < 0 || row.HeldOutNLL < r.Grid[best].HeldOutNLL {
			best = len(r.Grid) - 1
		}
		fmt.Fprintf(progress, "grid gru e=%d h=%d lr=%g heldout_nll=%.4f at epoch %d\n", row.Embed, row.Hidden, row.LearnRate, row.HeldOutNLL, row.Epochs)
	}
	r.GridSeconds = time.Since(gridStart).Seconds()
	r.Chosen = r.Grid[best]

	// 2. The final model on all of Training_Data_Master: the chosen
	// setting's epochs up to its best, at the step sizes they had.
	cfg := grid[best]
	cfg.Schedule = nil
	for _, e := range r.Chosen.History[:r.Chosen.Epochs] {
		cfg.Schedule = append(cfg.Schedule, e.LearnRate)
	}
	all := make([][]int, len(d.Train))
	for i, t := range d.Train {
		all[i] = t.Calls
	}
	t0 := time.Now()
	m, _, err := TrainGRU(all, nil, cfg, nil)
	if err != nil {
		return nil, err
	}
	r.TrainSeconds = time.Since(t0).Seconds()
	r.Params, r.ModelBytes = m.Params(), m.Bytes()
	fmt.Fprintf(progress, "trained gru e=%d h=%d lr=%g for %d epochs in %.1fs\n", cfg.Embed, cfg.Hidden, cfg.LearnRate, len(cfg.Schedule), r.TrainSeconds)

	// 3. Scores; every Validation event timed.
	r.Workers = cfg.workers()
	normal, lat := scoreGRU(m, d.Validation, r.Workers, !opt.NoLatency)
	attack, _ := scoreGRU(m, d.Attack, r.Workers, false)
	if len(lat) > 0 {
		slices.Sort(lat)
		r.P50EventNS = float64(lat[len(lat)/2])
		r.P99EventNS = float64(lat[len(lat)*99/100])
		r.Events = len(lat)
	}
	r.DetectionFigures = detectionFigures(d, normal, attack, nboot)

	// 4. The ensemble with the n-gram's mean NLL.
	r.Ensemble.Score = "mean of the GRU's and the n-gram's mean per-call NLL, each standardised on the even Validation files (fixed a priori, equal weights)"
	nn, na := ngramMeanNLL(ngram, d.Validation), ngramMeanNLL(ngram, d.Attack)
	zg, zn := standardiser(normal), standardiser(nn)
	en, ea := make([]float64, len(normal)), make([]float64, len(attack))
	for i := range en {
		en[i] = (zg(normal[i]) + zn(nn[i])) / 2
	}
	for i := range ea {
		ea[i] = (zg(attack[i]) + zn(na[i])) / 2
	}
	r.Ensemble.DetectionFigures = detectionFigures(d, en, ea, nboot)

	// 5. The seed ensemble, when asked for.
	if opt.GRUSeeds > 1 {
		se := &SeedEnsembleReport{Seeds: opt.GRUSeeds,
			Score: fmt.Sprintf("mean over %d GRUs of the chosen setting, trained from seeds 1..%d, of the trace's mean per-call NLL (fixed a priori)", opt.GRUSeeds, opt.GRUSeeds)}
		sn, sa := slices.Clone(normal), slices.Clone(attack)
		t0 := time.Now()
		for seed := 2; seed <= opt.GRUSeeds; seed++ {
			c := cfg
			c.Seed = uint64(seed)
			ms, _, err := TrainGRU(all, nil, c, nil)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(progress, "trained gru seed %d (%.1fs so far)\n", seed, time.Since(t0).Seconds())
			n2, _ := scoreGRU(ms, d.Validation, r.Workers, false)
			a2, _ := scoreGRU(ms, d.Attack, r.Workers, false)
			for i := range sn {
				sn[i] += n2[i]
			}
			for i := range sa {
				sa[i] += a2[i]
			}
		}
		se.TrainSeconds = time.Since(t0).Seconds()
		k := float64(opt.GRUSeeds)
		for i := range sn {
			sn[i] /= k
		}
		for i := range sa {
			sa[i] /= k
		}
		se.DetectionFigures = detectionFigures(d, sn, sa, nboot)
		r.SeedEnsemble = se
	}
	return r, nil
}

// scoreGRU returns each trace's GRUStream.Score, the traces spread over
// workers goroutines, and with timed every Observe's duration in ns.
func scoreGRU(m *GRUModel, ts []ADFATrace, workers int, timed bool) ([]float64, []int64) {
	out := make([]float64, len(ts))
	lats := make([][]int64, workers)
	parallelFor(len(ts), workers, func(w, lo, hi int) {
		s := m.NewStream()
		var lat []int64
		if timed {
			n := 0
			for _, t := range ts[lo:hi] {
				n += len(t.Calls)
			}
			lat = make([]int64, 0, n)
		}
		for i := lo; i < hi; i++ {
			s.Reset()
			for _, c := range ts[i].Calls {
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
		lats[w] = lat
	})
	return out, slices.Concat(lats...)
}

// ngramMeanNLL is each trace's mean per-call NLL under the n-gram LM.
func ngramMeanNLL(m *SeqModel, ts []ADFATrace) []float64 {
	out := make([]float64, len(ts))
	s := m.NewStream()
	for i, t := range ts {
		s.Reset()
		for _, c := range t.Calls {
			s.Observe(c)
		}
		out[i] = s.MeanNLL()
	}
	return out
}

// standardiser returns x -> (x - mean) / sd, mean and sd taken over the
// even-indexed entries of normal (the calibration half of Validation).
func standardiser(normal []float64) func(float64) float64 {
	var cal []float64
	for i := 0; i < len(normal); i += 2 {
		cal = append(cal, normal[i])
	}
	mu := mean(cal)
	var ss float64
	for _, v := range cal {
		ss += (v - mu) * (v - mu)
	}
	sd := math.Sqrt(ss / float64(max(len(cal)-1, 1)))
	if sd == 0 {
		sd = 1
	}
	return func(x float64) float64 { return (x - mu) / sd }
}

// detectionFigures computes a score's figures: AUC over all normals vs all attacks with its bootstrap
// interval, thresholds on even Validation files tested on odd ones, ROC
// points, FAR at 90% DR, per-family detection at the 5% threshold, and the
// deduplicated AUC.
func detectionFigures(d *ADFA, normal, attack []float64, nboot int) DetectionFigures {
	var f DetectionFigures
	f.AUC = AUC(normal, attack)
	f.AUCCI = BootstrapAUC(normal, attack, nboot, 1)
	var cal, test []float64
	for i, v := range normal {
		if i%2 == 0 {
			cal = append(cal, v)
		} else {
			test = append(test, v)
		}
	}
	thr := func(p float64) float64 { return ThresholdAtFPR(cal, p) }
	f.DRAt1FPR, f.TestFPRAt1 = above(attack, thr(0.01)), above(test, thr(0.01))
	f.DRAt5FPR, f.TestFPRAt5 = above(attack, thr(0.05)), above(test, thr(0.05))
	f.DRAt10FPR, f.TestFPRAt10 = above(attack, thr(0.10)), above(test, thr(0.10))
	f.ROCDRAt1FPR = above(attack, ThresholdAtFPR(normal, 0.01))
	f.ROCDRAt5FPR = above(attack, ThresholdAtFPR(normal, 0.05))
	f.ROCDRAt10FPR = above(attack, ThresholdAtFPR(normal, 0.10))
	f.FARAt90DR = FARAtDR(normal, attack, 0.9)
	f.Threshold = thr(0.05)
	f.PerFamily, f.FamilySizes = map[string]float64{}, map[string]int{}
	hits := map[string]int{}
	for i, t := range d.Attack {
		f.FamilySizes[t.Family]++
		if attack[i] > f.Threshold {
			hits[t.Family]++
		}
	}
	for fam, n := range f.FamilySizes {
		f.PerFamily[fam] = float64(hits[fam]) / float64(n)
	}
	key := func(c []int) string { return fmt.Sprint(c) }
	inTrain := map[string]bool{}
	for _, t := range d.Train {
		inTrain[key(t.Calls)] = true
	}
	var dn, da []float64
	seen := map[string]bool{}
	for i, t := range d.Validation {
		if k := key(t.Calls); !inTrain[k] && !seen[k] {
			seen[k] = true
			dn = append(dn, normal[i])
		}
	}
	clear(seen)
	for i, t := range d.Attack {
		if k := key(t.Calls); !seen[k] {
			seen[k] = true
			da = append(da, attack[i])
		}
	}
	f.AUCDedup, f.DedupNormals, f.DedupAttacks = AUC(dn, da), len(dn), len(da)
	return f
}

// WriteTable writes the GRU's part of the report for people.
func (r *GRUReport) WriteTable(w io.Writer, ngramHeldOut float64) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	pct := func(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }
	fmt.Fprintf(tw, "\nGRU LM grid (held-out NLL on every 5th Training file, best epoch of each; lowest wins; the n-gram's best: %.4f)\n", ngramHeldOut)
	fmt.Fprintf(tw, "embed\thidden\tlearn rate\tbest epoch\theld-out NLL (nats)\ttrain s\t\n")
	for _, g := range r.Grid {
		mark := ""
		if g.Embed == r.Chosen.Embed && g.Hidden == r.Chosen.Hidden && g.LearnRate == r.Chosen.LearnRate {
			mark = "  <- chosen"
		}
		fmt.Fprintf(tw, "%d\t%d\t%g\t%d/%d\t%.4f\t%.1f\t%s\n", g.Embed, g.Hidden, g.LearnRate, g.Epochs, len(g.History), g.HeldOutNLL, g.TrainSeconds, mark)
	}
	fmt.Fprintf(tw, "\nscore gru: %s\nscore ensemble: %s\n", r.Score, r.Ensemble.Score)
	cols := []*DetectionFigures{&r.DetectionFigures, &r.Ensemble.DetectionFigures}
	head := "figure\tgru\tensemble\t"
	if se := r.SeedEnsemble; se != nil {
		fmt.Fprintf(tw, "score seed ensemble: %s\n", se.Score)
		cols = append(cols, &se.DetectionFigures)
		head += "seed ensemble\t"
	}
	fmt.Fprintf(tw, "\n%s\n", head)
	row := func(name string, f func(*DetectionFigures) string) {
		fmt.Fprintf(tw, "%s\t", name)
		for _, c := range cols {
			fmt.Fprintf(tw, "%s\t", f(c))
		}
		fmt.Fprintln(tw)
	}
	row("ROC AUC (all normals vs attacks)", func(f *DetectionFigures) string {
		return fmt.Sprintf("%.4f [%.4f, %.4f]", f.AUC, f.AUCCI[0], f.AUCCI[1])
	})
	row(fmt.Sprintf("ROC AUC deduplicated (%d normals, %d attacks)", r.DedupNormals, r.DedupAttacks), func(f *DetectionFigures) string { return fmt.Sprintf("%.4f", f.AUCDedup) })
	row("FAR at 90% DR", func(f *DetectionFigures) string { return pct(f.FARAt90DR) })
	for _, x := range []struct {
		name       string
		dr, tf, rc func(*DetectionFigures) float64
	}{
		{"1%", func(f *DetectionFigures) float64 { return f.DRAt1FPR }, func(f *DetectionFigures) float64 { return f.TestFPRAt1 }, func(f *DetectionFigures) float64 { return f.ROCDRAt1FPR }},
		{"5%", func(f *DetectionFigures) float64 { return f.DRAt5FPR }, func(f *DetectionFigures) float64 { return f.TestFPRAt5 }, func(f *DetectionFigures) float64 { return f.ROCDRAt5FPR }},
		{"10%", func(f *DetectionFigures) float64 { return f.DRAt10FPR }, func(f *DetectionFigures) float64 { return f.TestFPRAt10 }, func(f *DetectionFigures) float64 { return f.ROCDRAt10FPR }},
	} {
		row(fmt.Sprintf("DR at %s FPR (even files; test FPR odd; ROC point)", x.name), func(f *DetectionFigures) string {
			return fmt.Sprintf("%s (%s; %s)", pct(x.dr(f)), pct(x.tf(f)), pct(x.rc(f)))
		})
	}
	fams := make([]string, 0, len(r.PerFamily))
	for f := range r.PerFamily {
		fams = append(fams, f)
	}
	slices.Sort(fams)
	for _, fam := range fams {
		row(fmt.Sprintf("DR %s (%d traces, 5%% FPR threshold)", fam, r.FamilySizes[fam]), func(f *DetectionFigures) string { return pct(f.PerFamily[fam]) })
	}
	fmt.Fprintf(tw, "training time (final model, %d epochs)\t%.1f s (grid %.1f s)\t\t\n", r.Chosen.Epochs, r.TrainSeconds, r.GridSeconds)
	fmt.Fprintf(tw, "per-event latency p50 / p99\t%.0f ns / %.0f ns over %d events, %d streams at once\t\t\n", r.P50EventNS, r.P99EventNS, r.Events, r.Workers)
	fmt.Fprintf(tw, "model memory\t%d weights, %.1f KiB\t\t\n", r.Params, float64(r.ModelBytes)/1024)
	if se := r.SeedEnsemble; se != nil {
		fmt.Fprintf(tw, "seed ensemble: %d more models\t%.1f s\t\t\n", se.Seeds-1, se.TrainSeconds)
	}
	return tw.Flush()
}
