package supervisor

import (
	"fmt"
	"io"
	"math/bits"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
)

// histBuckets: decision times in ns, log2 with 4 sub-buckets per octave.
const histSub = 4
const histBuckets = 64 * histSub

// Stats are the supervisor's live figures. All counters are updated with
// atomics on the receive thread and can be read at any time.
type Stats struct {
	Profile string
	Mode    profiles.Mode

	// HandshakeNS is the launch handshake: program sent to the ready shim,
	// filter loaded, listener received, supervisor started, go-ahead sent.
	HandshakeNS atomic.Uint64

	received atomic.Uint64
	answered atomic.Uint64
	vanished atomic.Uint64 // target died or call interrupted before the answer
	actions  [profiles.ActionNotify + 1]atomic.Uint64
	sources  [numSources]atomic.Uint64
	hist     [histBuckets]atomic.Uint64
	cache    *decisionCache
	analysis *analysisTier
	live     liveStats    // by source and verdict, busiest, latest denials, rules (stats_recent.go)
	seq      *seqCounters // the sequence model's feed (seqtap.go); nil without one

	mu       sync.Mutex
	denied   map[deniedKey]uint64
	degraded []string
}

type deniedKey struct {
	syscall string
	comm    string
	rule    string
	action  profiles.Action
	model   bool // the model would have denied it ([analyzer] mode = "audit")
}

func newStats(profile string, mode profiles.Mode) *Stats {
	s := &Stats{Profile: profile, Mode: mode, denied: map[deniedKey]uint64{}}
	s.live.init()
	return s
}

func (s *Stats) count(d decision, n *kernel.Notif) {
	if int(d.action) < len(s.actions) {
		s.actions[d.action].Add(1)
	}
	s.sources[d.source].Add(1)
	denied := d.action == profiles.ActionErrno || d.action == profiles.ActionKill || d.layer == SourceUndecided
	comm := s.live.count(d, n, denied) // read from /proc when denied
	if d.modelWouldDeny && !denied {
		comm = procComm(n.PID)
		k := deniedKey{syscall: syscallName(n.Data.Nr), comm: comm, rule: ruleText(d), action: d.action, model: true}
		s.mu.Lock()
		s.denied[k]++
		s.mu.Unlock()
	}
	if denied {
		k := deniedKey{syscall: syscallName(n.Data.Nr), comm: comm, rule: ruleText(d), action: d.action}
		s.mu.Lock()
		s.denied[k]++
		s.mu.Unlock()
	}
}

func (s *Stats) observe(dt time.Duration) {
	s.hist[histIndex(uint64(dt))].Add(1)
	s.live.observe(dt)
}

func histIndex(ns uint64) int {
	if ns < histSub {
		return int(ns)
	}
	e := bits.Len64(ns) - 1 // ns in [2^e, 2^(e+1))
	sub := int((ns >> (e - 2)) & (histSub - 1))
	i := e*histSub + sub
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// histUpper is the upper bound in ns of bucket i.
func histUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e, sub := i/histSub, i%histSub
	return (uint64(histSub+sub+1) << e) / histSub
}

func procComm(pid uint32) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func syscallName(nr int32) string {
	if name, ok := profiles.SyscallName(int(nr)); ok {
		return name
	}
	return fmt.Sprintf("syscall_%d", nr)
}

func ruleText(d decision) string {
	switch {
	case d.rule != "" && d.pos == (profiles.Pos{}):
		return d.rule
	case d.rule != "":
		return fmt.Sprintf("%s (%s)", d.pos, d.rule)
	case d.layer == SourceDefault:
		return "[supervisor] default"
	case d.layer == SourceUndecided:
		return "undecided (fail closed)"
	}
	return d.layer.String()
}

// Snapshot is a consistent-enough copy of the figures, for the summary,
// --json output and tests.
type Snapshot struct {
	Profile        string            `json:"profile"`
	Mode           string            `json:"mode"`
	Received       uint64            `json:"notifications_received"`
	Answered       uint64            `json:"notifications_answered"`
	Vanished       uint64            `json:"notifications_vanished"`
	Verdicts       map[string]uint64 `json:"verdicts"`
	Sources        map[string]uint64 `json:"sources"`
	CacheHits      uint64            `json:"cache_hits"`
	CacheMisses    uint64            `json:"cache_misses"`
	CacheEvictions uint64            `json:"cache_evictions"`
	CacheCapacity  int               `json:"cache_capacity"`
	DecisionP50NS  uint64            `json:"decision_p50_ns"`
	DecisionP99NS  uint64            `json:"decision_p99_ns"`
	Denied         []DeniedCount     `json:"denied"`
	HandshakeNS    uint64            `json:"handshake_ns"`
	// The model tier ([analyzer]); zero without one.
	AnalyzerBudgetNS  uint64          `json:"analyzer_budget_ns"`
	AnalyzerDone      uint64          `json:"analyzer_analyses"`
	AnalyzerOverruns  uint64          `json:"analyzer_overruns"`
	AnalyzerDeferred  uint64          `json:"analyzer_deferred"`
	AnalyzerFailures  uint64          `json:"analyzer_failures"`
	AnalyzerModel     string          `json:"analyzer_model,omitempty"`
	AnalyzerAudit     bool            `json:"analyzer_audit,omitempty"`      // [analyzer] mode = "audit"
	AnalyzerWouldDeny uint64          `json:"analyzer_would_deny,omitempty"` // denials mode audit did not carry out
	AnalyzerP50NS     uint64          `json:"analyzer_p50_ns"`               // time to the tier's verdict (or on_timeout)
	AnalyzerP99NS     uint64          `json:"analyzer_p99_ns"`
	Degraded          []string        `json:"degraded"`
	DecisionCount     uint64          `json:"decision_count"`  // decisions timed
	DecisionSumNS     uint64          `json:"decision_sum_ns"` // their total time
	Decisions         []DecisionCount `json:"decisions"`       // by source and verdict
	Busiest           []ProcCount     `json:"busiest"`         // top comm by notifications
	Recent            []Denial        `json:"recent_denials"`  // the latest denials, newest first
	RulesActive       int             `json:"rules_active"`
	RulesVersion      uint64          `json:"rules_version"`
	Seq               *SeqStats       `json:"sequence,omitempty"` // the sequence model's feed; nil without one
}

// DeniedCount is one line of the "top denied" table.
type DeniedCount struct {
	Syscall string `json:"syscall"`
	Comm    string `json:"comm"`
	Rule    string `json:"rule"`
	Verdict string `json:"verdict"`
	Count   uint64 `json:"count"`
	// ModelOnly: the call ran; the model tier, in mode audit, would
	// have denied it.
	ModelOnly bool `json:"model_only,omitempty"`
}

// Degrade records a mechanism archangel could not use and what it does
// instead (always stricter, never weaker); the summary and stats show it.
func (s *Stats) Degrade(what string) {
	s.mu.Lock()
	s.degraded = append(s.degraded, what)
	s.mu.Unlock()
}

// Snapshot copies the current figures.
func (s *Stats) Snapshot() Snapshot {
	out := Snapshot{
		Profile:     s.Profile,
		Mode:        s.Mode.String(),
		Received:    s.received.Load(),
		Answered:    s.answered.Load(),
		Vanished:    s.vanished.Load(),
		HandshakeNS: s.HandshakeNS.Load(),
		Verdicts:    map[string]uint64{},
		Sources:     map[string]uint64{},
	}
	for a := range s.actions {
		if v := s.actions[a].Load(); v > 0 {
			out.Verdicts[profiles.Action(a).String()] = v
		}
	}
	for src := range s.sources {
		if v := s.sources[src].Load(); v > 0 {
			out.Sources[Source(src).String()] = v
		}
	}
	if s.cache != nil {
		out.CacheHits, out.CacheMisses, out.CacheEvictions = s.cache.hits.Load(), s.cache.misses.Load(), s.cache.evictions.Load()
		out.CacheCapacity = s.cache.Capacity()
	}
	var counts [histBuckets]uint64
	var total uint64
	for i := range s.hist {
		counts[i] = s.hist[i].Load()
		total += counts[i]
	}
	out.DecisionP50NS, out.DecisionP99NS = quantile(&counts, total, 0.50), quantile(&counts, total, 0.99)
	out.DecisionCount = total
	s.live.fill(&out)
	out.Seq = s.seq.snapshot()
	if t := s.analysis; t != nil {
		out.AnalyzerBudgetNS, out.AnalyzerDone = uint64(t.budget.Load()), t.analyzed.Load()
		out.AnalyzerOverruns, out.AnalyzerDeferred, out.AnalyzerFailures = t.overruns.Load(), t.deferred.Load(), t.failures.Load()
		out.AnalyzerModel, out.AnalyzerAudit, out.AnalyzerWouldDeny = t.model, t.audit, t.wouldDeny.Load()
		var ac [histBuckets]uint64
		var at uint64
		for i := range t.hist {
			ac[i] = t.hist[i].Load()
			at += ac[i]
		}
		out.AnalyzerP50NS, out.AnalyzerP99NS = quantile(&ac, at, 0.50), quantile(&ac, at, 0.99)
	}
	s.mu.Lock()
	out.Degraded = append([]string{}, s.degraded...)
	for k, v := range s.denied {
		out.Denied = append(out.Denied, DeniedCount{Syscall: k.syscall, Comm: k.comm, Rule: k.rule, Verdict: k.action.String(), Count: v, ModelOnly: k.model})
	}
	s.mu.Unlock()
	sort.Slice(out.Denied, func(i, j int) bool {
		a, b := out.Denied[i], out.Denied[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Syscall+a.Comm < b.Syscall+b.Comm
	})
	return out
}

func quantile(counts *[histBuckets]uint64, total uint64, q float64) uint64 {
	if total == 0 {
		return 0
	}
	want := uint64(float64(total)*q + 0.5)
	if want == 0 {
		want = 1
	}
	var acc uint64
	for i, c := range counts {
		acc += c
		if acc >= want {
			return histUpper(i)
		}
	}
	return histUpper(histBuckets - 1)
}

// WriteSummary prints the end-of-run summary (for stderr).
func (snap Snapshot) WriteSummary(w io.Writer) {
	verb := "denied"
	if snap.Mode == profiles.ModeAudit.String() {
		verb = "would deny"
	}
	fmt.Fprintf(w, "archangel: profile %s (%s): %d notifications, %d answered, %d vanished\n",
		snap.Profile, snap.Mode, snap.Received, snap.Answered, snap.Vanished)
	fmt.Fprintf(w, "  verdicts: %s\n", joinCounts(snap.Verdicts))
	fmt.Fprintf(w, "  sources:  %s\n", joinCounts(snap.Sources))
	hitRate := 0.0
	if look := snap.CacheHits + snap.CacheMisses; look > 0 {
		hitRate = 100 * float64(snap.CacheHits) / float64(look)
	}
	fmt.Fprintf(w, "  cache:    %.1f%% hits (%d/%d), %d evictions, capacity %d\n",
		hitRate, snap.CacheHits, snap.CacheHits+snap.CacheMisses, snap.CacheEvictions, snap.CacheCapacity)
	fmt.Fprintf(w, "  decision: p50 %s p99 %s; launch handshake %s\n", fmtNS(snap.DecisionP50NS), fmtNS(snap.DecisionP99NS), fmtNS(snap.HandshakeNS))
	if snap.AnalyzerBudgetNS > 0 {
		fmt.Fprintf(w, "  analyzer: %s, %d analyses (p50 %s p99 %s), %d over budget, %d deferred, %d failed; budget now %s\n",
			snap.AnalyzerModel, snap.AnalyzerDone, fmtNS(snap.AnalyzerP50NS), fmtNS(snap.AnalyzerP99NS),
			snap.AnalyzerOverruns, snap.AnalyzerDeferred, snap.AnalyzerFailures, fmtNS(snap.AnalyzerBudgetNS))
		if snap.AnalyzerAudit {
			fmt.Fprintf(w, "  analyzer: mode audit: %d calls the model would deny ran (see --events)\n", snap.AnalyzerWouldDeny)
		}
	}
	writeSeqSummary(w, snap.Seq)
	for _, d := range snap.Degraded {
		fmt.Fprintf(w, "  degraded: %s\n", d)
	}
	for i, d := range snap.Denied {
		if i == 10 {
			fmt.Fprintf(w, "  ... %d more\n", len(snap.Denied)-i)
			break
		}
		v := verb
		if d.ModelOnly {
			v = "analyzer would deny"
		}
		if d.Verdict == profiles.ActionKill.String() {
			v = "would kill"
			if snap.Mode != profiles.ModeAudit.String() {
				v = "killed"
			}
		}
		fmt.Fprintf(w, "  %s: %s x%d by %s, rule %s\n", v, d.Syscall, d.Count, d.Comm, d.Rule)
	}
}

func joinCounts(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func fmtNS(ns uint64) string {
	return time.Duration(ns).String()
}
