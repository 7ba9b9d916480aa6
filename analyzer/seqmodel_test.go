package analyzer

import (
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var adfaFull = flag.Bool("adfa-full", false, "run the full ADFA-LD evaluation (TestADFAFull), printing the table; -adfa-json prints JSON")
var adfaJSON = flag.Bool("adfa-json", false, "with -adfa-full, print the report as JSON")

// adfaDir is where CI keeps the dataset: ../shared beside the checkout.
const adfaDir = "../../shared/data/adfa-ld"

func randTraces(seed uint64, n, length, alphabet int) [][]int {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([][]int, n)
	for i := range out {
		t := make([]int, 1+rng.IntN(length))
		for j := range t {
			// a skewed, partly repetitive stream
			if j > 2 && rng.IntN(3) > 0 {
				t[j] = t[j-3]
			} else {
				t[j] = 100 + rng.IntN(alphabet)
			}
		}
		out[i] = t
	}
	return out
}

func TestProbSumsToOne(t *testing.T) {
	traces := randTraces(1, 40, 60, 12)
	for _, tc := range []struct {
		name string
		cfg  SeqConfig
	}{
		{"kn1", DefaultSeqConfig(1, KneserNey, 0.75)},
		{"kn3", DefaultSeqConfig(3, KneserNey, 0.75)},
		{"kn6-d1", DefaultSeqConfig(6, KneserNey, 1)},
		{"kn8-d.1", DefaultSeqConfig(8, KneserNey, 0.1)},
		{"wb2", DefaultSeqConfig(2, WittenBell, 0)},
		{"wb8", DefaultSeqConfig(8, WittenBell, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Train(traces, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			// contexts: empty, seen ones from training, and unseen/UNK ones
			hists := []uint64{0}
			for _, tr := range traces[:5] {
				var h uint64
				for _, s := range tr {
					h = h<<8 | uint64(m.token(s))
					hists = append(hists, h)
				}
			}
			hists = append(hists, 0x0101010101010101, 0x0203040506070809, 0xfefefefe)
			for _, h := range hists {
				var sum float64
				for w := tokUNK; w < firstToken+m.vocab-1; w++ {
					p := m.prob(h, uint8(w))
					if !(p > 0) || math.IsNaN(p) || math.IsInf(p, 0) {
						t.Fatalf("P(%d | %#x) = %v", w, h, p)
					}
					sum += p
				}
				if math.Abs(sum-1) > 1e-9 {
					t.Fatalf("sum over vocabulary of P(. | %#x) = %.12f, want 1", h, sum)
				}
			}
		})
	}
}

func TestTrainRejectsBadConfig(t *testing.T) {
	for _, cfg := range []SeqConfig{
		DefaultSeqConfig(0, KneserNey, 0.5),
		DefaultSeqConfig(9, WittenBell, 0),
		DefaultSeqConfig(3, KneserNey, 0),
		DefaultSeqConfig(3, KneserNey, 1.5),
		{Order: 3, Smoothing: WittenBell, Window: -1},
	} {
		if _, err := Train([][]int{{1, 2, 3}}, cfg); err == nil {
			t.Errorf("Train(%+v) succeeded, want an error", cfg)
		}
	}
}

// bruteMatch is the longest suffix of s[:i+1] that occurs in some text,
// where no occurrence may span a separator.
func bruteMatch(texts [][]uint8, s []uint8, i int) int {
	best := 0
	for l := 1; l <= i+1; l++ {
		suf := s[i+1-l : i+1]
		found := false
		for _, t := range texts {
			if strings.Contains(string(t), string(suf)) {
				found = true
				break
			}
		}
		if !found {
			break
		}
		best = l
	}
	return best
}

func TestSuffixAutomatonMatchLen(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 200 {
		alpha := 2 + round%4
		var texts [][]uint8
		var joined []uint8
		for range 1 + rng.IntN(3) {
			tx := make([]uint8, rng.IntN(12))
			for j := range tx {
				tx[j] = uint8(firstToken + rng.IntN(alpha))
			}
			texts = append(texts, tx)
			if len(joined) > 0 {
				joined = append(joined, tokSEP)
			}
			joined = append(joined, tx...)
		}
		a := newSuffixAutomaton(joined)
		q := make([]uint8, 1+rng.IntN(20))
		for j := range q {
			q[j] = uint8(firstToken + rng.IntN(alpha+1))
		}
		var st, ml int32
		for i, c := range q {
			st, ml = a.step(st, ml, c)
			if want := bruteMatch(texts, q, i); int(ml) != want {
				t.Fatalf("texts %v query %v: match at %d = %d, want %d", texts, q, i, ml, want)
			}
		}
	}
}

func TestStreamScoreAndMatch(t *testing.T) {
	traces := [][]int{{1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 3, 9, 9, 9}}
	m, err := Train(traces, SeqConfig{Order: 3, Smoothing: WittenBell, Window: 4, MatchK: 6, MatchPenalty: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := m.NewStream()
	var got []int
	var sur []float64
	for _, c := range []int{1, 2, 3, 4, 5, 42, 6, 7} {
		sur = append(sur, s.Observe(c))
		got = append(got, s.MatchLen())
	}
	if want := []int{1, 2, 3, 4, 5, 0, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("match lengths %v, want %v", got, want)
	}
	// the score is the largest mean of 4 consecutive surprises
	best := 0.0
	for i := 0; i+4 <= len(sur); i++ {
		best = max(best, (sur[i]+sur[i+1]+sur[i+2]+sur[i+3])/4)
	}
	if math.Abs(s.Score()-best) > 1e-9 {
		t.Errorf("Score() = %v, want %v", s.Score(), best)
	}
	if sur[5] < sur[4]+1 {
		t.Errorf("unknown syscall surprise %v not above known %v", sur[5], sur[4])
	}
	s.Reset()
	if s.Events() != 0 || s.Score() != 0 || s.MatchLen() != 0 {
		t.Errorf("Reset left events %d score %v match %d", s.Events(), s.Score(), s.MatchLen())
	}
}

func TestStreamWholeMean(t *testing.T) {
	traces := [][]int{{1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 3, 9, 9, 9}}
	m, err := Train(traces, SeqConfig{Order: 2, Smoothing: KneserNey, Discount: 0.7, Window: 0, MatchK: 4, MatchPenalty: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := m.NewStream()
	var sum float64
	q := []int{1, 2, 3, 9, 7, 8, 77, 1, 2}
	for _, c := range q {
		sum += s.Observe(c)
	}
	if want := sum / float64(len(q)); math.Abs(s.Score()-want) > 1e-9 {
		t.Errorf("Score() = %v, want the mean surprise %v", s.Score(), want)
	}
}

func TestAUCMatchesPairwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for round := range 50 {
		n, a := make([]float64, 1+rng.IntN(60)), make([]float64, 1+rng.IntN(60))
		for i := range n {
			n[i] = float64(rng.IntN(10 + round)) // plenty of ties
		}
		for i := range a {
			a[i] = float64(rng.IntN(10+round)) + float64(round%3)
		}
		var wins float64
		for _, x := range a {
			for _, y := range n {
				switch {
				case x > y:
					wins++
				case x == y:
					wins += 0.5
				}
			}
		}
		want := wins / float64(len(a)*len(n))
		if got := AUC(n, a); math.Abs(got-want) > 1e-12 {
			t.Fatalf("round %d: AUC %v, pairwise %v", round, got, want)
		}
		ci := BootstrapAUC(n, a, 200, 1)
		if !(ci[0] <= want && want <= ci[1]) {
			t.Fatalf("round %d: bootstrap CI %v does not contain AUC %v", round, ci, want)
		}
		if ci2 := BootstrapAUC(n, a, 200, 1); ci2 != ci {
			t.Fatalf("bootstrap not deterministic: %v vs %v", ci, ci2)
		}
	}
}

func TestThresholds(t *testing.T) {
	normal := make([]float64, 100)
	for i := range normal {
		normal[i] = float64(i)
	}
	if got := ThresholdAtFPR(normal, 0.05); got != 94 {
		t.Errorf("ThresholdAtFPR = %v, want 94 (5 of 100 above)", got)
	}
	attack := []float64{50, 60, 70, 80, 90, 95, 96, 97, 98, 99}
	if got := FARAtDR(normal, attack, 0.9); got != 0.4 {
		t.Errorf("FARAtDR = %v, want 0.4 (threshold 60)", got)
	}
}

func TestNaturalCompare(t *testing.T) {
	names := []string{"Adduser_10", "Adduser_2", "UAD-Adduser-1-1371.txt", "Adduser_1", "UAD-Adduser-1-213.txt", "Hydra_FTP_1"}
	slices.SortFunc(names, naturalCompare)
	want := []string{"Adduser_1", "Adduser_2", "Adduser_10", "Hydra_FTP_1", "UAD-Adduser-1-213.txt", "UAD-Adduser-1-1371.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("got %v, want %v", names, want)
	}
}

func requireADFA(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(adfaDir, "Training_Data_Master")); err != nil {
		t.Skipf("ADFA-LD not found at %s (CI keeps ../shared beside the checkout): %v", adfaDir, err)
	}
}

// TestADFASmoke evaluates on a deterministic subset: every 3rd Training
// trace, every 10th Validation trace, every 3rd attack trace.
func TestADFASmoke(t *testing.T) {
	requireADFA(t)
	d, err := LoadADFA(adfaDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Train) != 833 || len(d.Validation) != 4372 || len(d.Attack) != 746 {
		t.Fatalf("loaded %d/%d/%d traces, want 833/4372/746", len(d.Train), len(d.Validation), len(d.Attack))
	}
	if d.Attack[0].Family != "Adduser" || !strings.Contains(d.Attack[len(d.Attack)-1].Name, "Web_Shell_10") {
		t.Fatalf("attack order: first %q (%s), last %q", d.Attack[0].Name, d.Attack[0].Family, d.Attack[len(d.Attack)-1].Name)
	}
	every := func(ts []ADFATrace, k int) []ADFATrace {
		var out []ADFATrace
		for i := 0; i < len(ts); i += k {
			out = append(out, ts[i])
		}
		return out
	}
	sub := &ADFA{Train: every(d.Train, 3), Validation: every(d.Validation, 10), Attack: every(d.Attack, 3)}
	r, err := EvalADFA(sub, EvalOptions{Orders: []int{3, 5}, Bootstrap: 100, NoLatency: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("subset AUC %.3f %v, chosen %+v", r.AUC, r.AUCCI, r.Chosen)
	if r.AUC < 0.6 {
		t.Errorf("subset AUC %.3f, want > 0.6 (the full run gives 0.72)", r.AUC)
	}
	if !(r.AUCCI[0] <= r.AUC && r.AUC <= r.AUCCI[1]) {
		t.Errorf("CI %v does not contain AUC %.3f", r.AUCCI, r.AUC)
	}
	if len(r.Grid) != 8 || len(r.PerFamily) != 6 {
		t.Errorf("grid %d rows, %d families; want 8 and 6", len(r.Grid), len(r.PerFamily))
	}
}

// TestADFAFull is the full protocol: go test ./analyzer -run TestADFAFull -adfa-full [-adfa-json] -v
func TestADFAFull(t *testing.T) {
	if !*adfaFull {
		t.Skip("the full ADFA-LD evaluation runs with -adfa-full")
	}
	requireADFA(t)
	if err := RunADFAEval(adfaDir, os.Stdout, *adfaJSON); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkStreamObserve(b *testing.B) {
	traces := randTraces(5, 300, 800, 120)
	m, err := Train(traces, DefaultSeqConfig(6, KneserNey, 0.75))
	if err != nil {
		b.Fatal(err)
	}
	query := randTraces(6, 1, 5000, 130)[0]
	s := m.NewStream()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Observe(query[i%len(query)])
		i++
	}
}

func TestStreamObserveAllocs(t *testing.T) {
	m, err := Train(randTraces(5, 50, 300, 40), DefaultSeqConfig(8, KneserNey, 0.75))
	if err != nil {
		t.Fatal(err)
	}
	s := m.NewStream()
	q := randTraces(9, 1, 300, 45)[0]
	if a := testing.AllocsPerRun(20, func() {
		for _, c := range q {
			s.Observe(c)
		}
	}); a != 0 {
		t.Errorf("Observe allocates %v times per run, want 0", a)
	}
}

// TestDeps keeps the package pure: builds without cgo and imports nothing
// from archangel but profiles.
func TestDeps(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps with CGO_ENABLED=0: %v\n%s", err, out)
	}
	const mod = "github.com/archangel-sandbox/archangel"
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "libseccomp") || strings.Contains(p, "internal/kernel") {
			t.Errorf("analyzer depends on %s", p)
		}
		if strings.HasPrefix(p, mod+"/") && p != mod+"/analyzer" && p != mod+"/profiles" && !strings.HasPrefix(p, mod+"/profiles/") {
			t.Errorf("analyzer imports %s; only profiles is allowed", p)
		}
	}
}
