package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/profiles"
)

// The analysis tier (DESIGN.md step 5): a notified call that no rule
// decides is put to a model within a time budget. If no verdict is ready
// in time, the profile's on_timeout verdict answers at once, the analysis
// goes on, and its verdict lands in the tier's cache for the next call of
// the same kind. The budget adapts: halved after sustained overruns,
// doubled (up to twice the configured one) while analyses keep inside it.
//
// Models: "http" posts the decoded call as JSON to a local endpoint (the
// scoring API below); "builtin" and "none" put nothing to a model yet
// (the [supervisor] default decides).
//
// Scoring API: POST the JSON of AnalysisRequest; answer 200 with
// {"verdict": "allow"|"deny", "score": 0.0-1.0, "reason": "..."}.
// Anything else counts as a failure and falls back like a timeout.

// AnalysisRequest is what the http model receives.
type AnalysisRequest struct {
	Syscall string   `json:"syscall"`
	Kind    string   `json:"kind"`
	Path    string   `json:"path,omitempty"`
	Addr    string   `json:"addr,omitempty"`
	Argv    []string `json:"argv,omitempty"`
	Exe     string   `json:"exe"`
	Comm    string   `json:"comm"`
	PID     int      `json:"pid"`
}

// AnalysisResponse is what the http model answers.
type AnalysisResponse struct {
	Verdict string  `json:"verdict"`
	Score   float64 `json:"score"`
	Reason  string  `json:"reason"`
}

type analysisTier struct {
	endpoint  string
	client    *http.Client
	configBud time.Duration
	budget    atomic.Int64 // ns, the budget in force
	onTimeout decision

	mu      sync.Mutex
	cache   map[string]decision // by analysisKey; bounded
	pending map[string]bool

	overruns, deferred, failures, analyzed atomic.Uint64
	streakOver, streakIn                   int // on the receive thread only
}

const maxAnalysisCache = 4096

// analysisConfigured reports whether p puts undecided calls to a model.
func analysisConfigured(p *profiles.Profile) bool {
	return p.Analyzer.Model == "http" && p.Analyzer.Endpoint != ""
}

func newAnalysisTier(a profiles.Analyzer) *analysisTier {
	if a.Model != "http" || a.Endpoint == "" {
		return nil
	}
	t := &analysisTier{endpoint: a.Endpoint, client: &http.Client{Timeout: 5 * time.Second}, configBud: a.Budget,
		cache: map[string]decision{}, pending: map[string]bool{}}
	if t.configBud <= 0 {
		t.configBud = profiles.DefaultBudget
	}
	t.budget.Store(int64(t.configBud))
	act := a.OnTimeout
	if act != profiles.ActionAllow && act != profiles.ActionKill {
		act = profiles.ActionErrno
	}
	t.onTimeout = decision{action: act, errno: profiles.Errno(1), source: SourceTimeout, layer: SourceTimeout, nocache: true,
		rule: "analyzer: no verdict within the budget: [analyzer] on_timeout"}
	return t
}

// analysisKey is the kind of call a verdict is cached for: who (the
// executable), what (the call) and on what (path or address).
func analysisKey(c *analyzer.Call) string {
	what := c.Path
	if c.Addr != nil {
		what = endpointText(c.Addr)
	}
	return c.Process.Exe + "\x00" + c.Name + "\x00" + what
}

// decide returns the model's verdict for c, or on_timeout when none is
// ready within the budget (the analysis goes on and is cached).
func (t *analysisTier) decide(c *analyzer.Call) decision {
	key := analysisKey(c)
	t.mu.Lock()
	if d, ok := t.cache[key]; ok {
		t.mu.Unlock()
		return d
	}
	running := t.pending[key]
	if !running {
		t.pending[key] = true
	}
	t.mu.Unlock()
	if running {
		t.deferred.Add(1)
		return t.onTimeout
	}
	req := AnalysisRequest{Syscall: c.Name, Kind: c.Kind.String(), Path: c.Path, Argv: c.Argv, Exe: c.Process.Exe, Comm: c.Process.Comm, PID: c.Process.PID}
	if c.Addr != nil {
		req.Addr = endpointText(c.Addr)
	}
	done := make(chan decision, 1)
	go func() {
		d, ok := t.ask(req)
		t.mu.Lock()
		delete(t.pending, key)
		if ok {
			if len(t.cache) >= maxAnalysisCache {
				t.cache = map[string]decision{}
			}
			t.cache[key] = d
		}
		t.mu.Unlock()
		if !ok {
			d = t.onTimeout
		}
		done <- d
	}()
	budget := time.Duration(t.budget.Load())
	timer := time.NewTimer(budget)
	defer timer.Stop()
	select {
	case d := <-done:
		t.inBudget()
		return d
	case <-timer.C:
		t.overrun()
		return t.onTimeout
	}
}

func (t *analysisTier) ask(req AnalysisRequest) (decision, bool) {
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, bytes.NewReader(body))
	if err != nil {
		t.failures.Add(1)
		return decision{}, false
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(hreq)
	if err != nil {
		t.failures.Add(1)
		return decision{}, false
	}
	defer resp.Body.Close()
	var ar AnalysisResponse
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&ar) != nil {
		t.failures.Add(1)
		return decision{}, false
	}
	t.analyzed.Add(1)
	d := decision{source: SourceAnalyzer, layer: SourceAnalyzer, nocache: true,
		rule: fmt.Sprintf("analyzer %s: %s (score %.2f: %s)", t.endpoint, ar.Verdict, ar.Score, ar.Reason)}
	switch ar.Verdict {
	case "allow":
		d.action = profiles.ActionAllow
	case "deny":
		d.action, d.errno = profiles.ActionErrno, profiles.Errno(1)
	default:
		t.failures.Add(1)
		return decision{}, false
	}
	return d, true
}

// overrun and inBudget adapt the budget (receive thread only).
func (t *analysisTier) overrun() {
	t.overruns.Add(1)
	t.streakOver++
	t.streakIn = 0
	if t.streakOver >= 5 {
		t.streakOver = 0
		if b := t.budget.Load() / 2; b >= int64(10*time.Microsecond) {
			t.budget.Store(b)
		}
	}
}

func (t *analysisTier) inBudget() {
	t.streakIn++
	t.streakOver = 0
	if t.streakIn >= 20 {
		t.streakIn = 0
		if b := t.budget.Load() * 2; b <= int64(2*t.configBud) {
			t.budget.Store(b)
		}
	}
}
