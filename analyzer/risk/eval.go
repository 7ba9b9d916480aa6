package risk

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"text/tabwriter"
	"time"
)

// TechniqueResult is the leave-one-technique-out result for one technique,
// averaged over the three benign folds.
type TechniqueResult struct {
	Technique string  `json:"technique"`
	Variants  int     `json:"variants"`       // hostile workloads of this technique
	Events    int     `json:"hostile_events"` // its (merged) events
	ROCAUC    float64 `json:"roc_auc"`
	PRAUC     float64 `json:"pr_auc"` // average precision against the held-out benign fold
	// EventRecall is the fraction of its events scoring at or above the
	// threshold where at most 1e-3 of the held-out benign events do.
	EventRecall float64 `json:"event_recall_at_1e-3"`
	// VariantRecall is the fraction of its variants with at least one
	// event at or above that threshold (the technique was caught).
	VariantRecall float64 `json:"variant_recall_at_1e-3"`
}

// EvalReport is what `archangel analyzer risk` prints.
type EvalReport struct {
	Records        int               `json:"records"`
	BenignEvents   int               `json:"benign_events"`
	HostileEvents  int               `json:"hostile_events"`
	BenignWorkload int               `json:"benign_workloads"`
	Techniques     []TechniqueResult `json:"techniques"`
	// Means over techniques.
	ROCAUC        float64 `json:"roc_auc"`
	PRAUC         float64 `json:"pr_auc"`
	EventRecall   float64 `json:"event_recall_at_1e-3"`
	VariantRecall float64 `json:"variant_recall_at_1e-3"`
	// The model Train makes, on its own hold-out (benign fold 2 and the
	// last variant of each technique; the Platt sigmoid and the threshold
	// were fitted there, so this is the operating point, not a test).
	HoldoutVariants      []string `json:"holdout_variants"`
	HoldoutCaught        []string `json:"holdout_variants_caught"`
	HoldoutROCAUC        float64  `json:"holdout_roc_auc"`
	HoldoutBenignEvents  int      `json:"holdout_benign_events"`
	HoldoutBenignAbove   int      `json:"holdout_benign_above_threshold"`
	HoldoutHostileEvents int      `json:"holdout_hostile_events"`
	HoldoutHostileAbove  int      `json:"holdout_hostile_above_threshold"`
	// The embedded (or given) model on the whole dataset.
	Threshold       float64 `json:"threshold"`
	BenignAbove     int     `json:"benign_events_above_threshold"`
	HostileAbove    int     `json:"hostile_events_above_threshold"`
	ScoreP50Nanos   float64 `json:"score_p50_ns"`
	ScoreP99Nanos   float64 `json:"score_p99_ns"`
	ScoreEventsTime int     `json:"latency_events"`
}

// Evaluate runs the leave-one-technique-out evaluation on recs: for each
// technique T and each of the three benign folds (benign workloads split by
// workload, never by event), weights are trained on the other two benign
// folds and every technique but T, and scored on T's events against the
// held-out fold's benign events. FPR thresholds are set on those benign
// events only.
func Evaluate(recs []Record, cfg TrainConfig) EvalReport {
	exs := prepare(recs)
	folds := benignFolds(exs)
	var techs []string
	variants := map[string]map[string]bool{}
	rep := EvalReport{Records: len(recs), BenignWorkload: len(folds)}
	for i := range exs {
		if t := exs[i].tech; t != "" {
			rep.HostileEvents++
			if variants[t] == nil {
				variants[t] = map[string]bool{}
				techs = append(techs, t)
			}
			variants[t][exs[i].workload] = true
		} else {
			rep.BenignEvents++
		}
	}
	sort.Strings(techs)
	m, cal, scores := trainHoldout(recs, cfg)
	var hb, hh []float64
	caught := map[string]bool{}
	held := map[string]bool{}
	for i := range cal {
		if cal[i].y == 0 {
			hb = append(hb, scores[i])
			rep.HoldoutBenignEvents++
			if scores[i] >= m.threshold {
				rep.HoldoutBenignAbove++
			}
			continue
		}
		held[cal[i].workload] = true
		hh = append(hh, scores[i])
		rep.HoldoutHostileEvents++
		if scores[i] >= m.threshold {
			rep.HoldoutHostileAbove++
			caught[cal[i].workload] = true
		}
	}
	rep.HoldoutROCAUC = rocAUC(hh, hb)
	for w := range held {
		rep.HoldoutVariants = append(rep.HoldoutVariants, w)
		if caught[w] {
			rep.HoldoutCaught = append(rep.HoldoutCaught, w)
		}
	}
	sort.Strings(rep.HoldoutVariants)
	sort.Strings(rep.HoldoutCaught)
	for _, t := range techs {
		res := TechniqueResult{Technique: t, Variants: len(variants[t])}
		for k := 0; k < 3; k++ {
			var train, testB, testH []example
			for _, ex := range exs {
				switch {
				case ex.tech == t:
					testH = append(testH, ex)
				case ex.y == 0 && folds[ex.workload] == k:
					testB = append(testB, ex)
				default:
					train = append(train, ex)
				}
			}
			res.Events = len(testH)
			prev := prevalence(train)
			w := fitWeights(train, prev, cfg)
			sb := make([]float64, len(testB))
			for i := range testB {
				sb[i] = marginOf(w, prev, &testB[i])
			}
			sh := make([]float64, len(testH))
			for i := range testH {
				sh[i] = marginOf(w, prev, &testH[i])
			}
			res.ROCAUC += rocAUC(sh, sb) / 3
			res.PRAUC += averagePrecision(sh, sb) / 3
			thr := thresholdAt(sb, cfg.TargetFPR)
			caught := map[string]bool{}
			n := 0
			for i, s := range sh {
				if s >= thr {
					n++
					caught[testH[i].workload] = true
				}
			}
			res.EventRecall += float64(n) / float64(len(sh)) / 3
			res.VariantRecall += float64(len(caught)) / float64(res.Variants) / 3
		}
		rep.Techniques = append(rep.Techniques, res)
		rep.ROCAUC += res.ROCAUC / float64(len(techs))
		rep.PRAUC += res.PRAUC / float64(len(techs))
		rep.EventRecall += res.EventRecall / float64(len(techs))
		rep.VariantRecall += res.VariantRecall / float64(len(techs))
	}
	return rep
}

// rocAUC is the probability that a hostile score exceeds a benign one
// (ties count half).
func rocAUC(pos, neg []float64) float64 {
	if len(pos) == 0 || len(neg) == 0 {
		return math.NaN()
	}
	n := slices.Clone(neg)
	sort.Float64s(n)
	var sum float64
	for _, p := range pos {
		lo := sort.SearchFloat64s(n, p)
		hi := sort.Search(len(n), func(i int) bool { return n[i] > p })
		sum += float64(lo) + float64(hi-lo)/2
	}
	return sum / float64(len(pos)) / float64(len(neg))
}

// averagePrecision is the area under the precision-recall curve as the
// mean of the precision at each hostile event's rank (ties broken
// pessimistically: benign first).
func averagePrecision(pos, neg []float64) float64 {
	if len(pos) == 0 {
		return math.NaN()
	}
	type item struct {
		s float64
		y bool
	}
	all := make([]item, 0, len(pos)+len(neg))
	for _, s := range pos {
		all = append(all, item{s, true})
	}
	for _, s := range neg {
		all = append(all, item{s, false})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].s != all[j].s {
			return all[i].s > all[j].s
		}
		return !all[i].y && all[j].y
	})
	var tp, sum float64
	for i, it := range all {
		if it.y {
			tp++
			sum += tp / float64(i+1)
		}
	}
	return sum / float64(len(pos))
}

// MeasureModel scores recs with m: how many benign and hostile events
// reach the threshold, and the Score latency per event (p50, p99 over
// events; each event's figure is the best of 5 trials of reps back-to-back
// calls, so that the clock's own cost is spread and a trial the scheduler
// interrupted does not count).
func MeasureModel(m *Model, recs []Record, rep *EvalReport, reps int) {
	si := newSeenIndex(recs)
	rep.Threshold = m.Threshold()
	rep.BenignAbove, rep.HostileAbove = 0, 0
	lat := make([]float64, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		c, ctx := r.Call(si.seen(r))
		s := m.Score(&c, &ctx)
		if s >= m.Threshold() {
			if r.Hostile() {
				rep.HostileAbove++
			} else {
				rep.BenignAbove++
			}
		}
		// Best of 5 trials: on a shared machine a trial the scheduler
		// interrupts measures the machine, not Score.
		best := math.Inf(1)
		for trial := 0; trial < 5; trial++ {
			t0 := time.Now()
			for j := 0; j < reps; j++ {
				s = m.Score(&c, &ctx)
			}
			best = min(best, float64(time.Since(t0).Nanoseconds())/float64(reps))
		}
		lat = append(lat, best)
	}
	sort.Float64s(lat)
	if len(lat) > 0 {
		rep.ScoreP50Nanos = lat[len(lat)/2]
		rep.ScoreP99Nanos = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	rep.ScoreEventsTime = len(lat)
}

// Print writes rep as a table, or as one JSON object.
func (rep *EvalReport) Print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(rep)
	}
	fmt.Fprintf(w, "risk model, leave-one-technique-out: %d records (%d benign events from %d workloads, %d hostile)\n",
		rep.Records, rep.BenignEvents, rep.BenignWorkload, rep.HostileEvents)
	fmt.Fprintln(w, "each technique held out in turn, against each of 3 benign workload folds (means); recall at 1e-3 benign FPR")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "technique\tvariants\tevents\tROC AUC\tPR AUC\tevent recall\tvariant recall\t")
	for _, t := range rep.Techniques {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.4f\t%.4f\t%.3f\t%.3f\t\n", t.Technique, t.Variants, t.Events, t.ROCAUC, t.PRAUC, t.EventRecall, t.VariantRecall)
	}
	fmt.Fprintf(tw, "mean\t\t\t%.4f\t%.4f\t%.3f\t%.3f\t\n", rep.ROCAUC, rep.PRAUC, rep.EventRecall, rep.VariantRecall)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "trained model on its calibration hold-out (benign fold 2, one variant per technique): ROC AUC %.4f; %d of %d benign and %d of %d hostile events at or above the threshold; variants caught %d of %d %v\n",
		rep.HoldoutROCAUC, rep.HoldoutBenignAbove, rep.HoldoutBenignEvents, rep.HoldoutHostileAbove, rep.HoldoutHostileEvents,
		len(rep.HoldoutCaught), len(rep.HoldoutVariants), rep.HoldoutCaught)
	if rep.ScoreEventsTime == 0 {
		return nil
	}
	fmt.Fprintf(w, "model: threshold %.4g; on the whole dataset %d benign and %d hostile events reach it\n",
		rep.Threshold, rep.BenignAbove, rep.HostileAbove)
	_, err := fmt.Fprintf(w, "Score latency over %d events: p50 %.0f ns, p99 %.0f ns\n", rep.ScoreEventsTime, rep.ScoreP50Nanos, rep.ScoreP99Nanos)
	return err
}
