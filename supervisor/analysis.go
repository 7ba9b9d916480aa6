package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

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
// Models ([analyzer] model):
//
//   - "builtin": the embedded per-event risk model (analyzer/risk), a
//     calibrated probability that the call is hostile; at or above the
//     model's threshold the call is denied. It runs on the receive thread:
//     a score takes microseconds, so there is nothing to hand off, and an
//     analysis that still took longer than the budget counts as an overrun
//     (its verdict, being ready, is used).
//   - "http": the decoded call is posted as JSON to a local endpoint (the
//     scoring API below).
//   - "chat": the decoded call is put to a local OpenAI-compatible chat
//     completions endpoint (llama.cpp's server, vLLM, Ollama...) with
//     the instructions in chatSystemPrompt; the reply's content must be the
//     scoring API's JSON answer.
//   - "none": no model; the [supervisor] default decides.
//
// Remote models (http, chat) run on their own goroutine; the receive
// thread waits at most the budget. Their failures (connection refused,
// HTTP errors, unparsable answers) are counted and answered like a
// timeout, never waited on.
//
// Scoring API: POST the JSON of AnalysisRequest; answer 200 with
// {"verdict": "allow"|"deny", "score": 0.0-1.0, "reason": "..."}.

// AnalysisRequest is what the http and chat models receive.
type AnalysisRequest struct {
	Syscall string    `json:"syscall"`
	Kind    string    `json:"kind"`
	Args    [6]uint64 `json:"args"`
	Path    string    `json:"path,omitempty"`
	Path2   string    `json:"path2,omitempty"`
	Flags   uint64    `json:"flags,omitempty"`
	Addr    string    `json:"addr,omitempty"`
	Argv    []string  `json:"argv,omitempty"`
	Exe     string    `json:"exe"`
	Comm    string    `json:"comm"`
	PID     int       `json:"pid"`
	PPID    int       `json:"ppid"`
	UID     uint32    `json:"uid"`
	EUID    uint32    `json:"euid"`
	// ParentExe is the caller's parent's executable; Wrote reports that
	// this run created or wrote Path earlier; StdioSocket that the
	// caller's stdin, stdout or stderr is a socket (exec calls only).
	ParentExe   string `json:"parent_exe,omitempty"`
	Wrote       bool   `json:"wrote,omitempty"`
	StdioSocket bool   `json:"stdio_socket,omitempty"`
	// The calling thread's accumulated surprise under its program's
	// sequence model, its threshold, and whether it crossed it; absent
	// when no syscall tap feeds a model.
	SeqScore     *float64 `json:"seq_score,omitempty"`
	SeqThreshold float64  `json:"seq_threshold,omitempty"`
	SeqAnomalous bool     `json:"seq_anomalous,omitempty"`
}

// AnalysisResponse is what the http model answers (and what the chat
// model's reply content holds).
type AnalysisResponse struct {
	Verdict string  `json:"verdict"`
	Score   float64 `json:"score"`
	Reason  string  `json:"reason"`
}

// remoteModel asks a model outside archangel for a verdict.
type remoteModel interface {
	ask(ctx context.Context, req *AnalysisRequest) (AnalysisResponse, error)
	describe() string
}

// localModel scores in process, fast enough for the receive thread.
type localModel interface {
	decide(c *analyzer.Call, f *callFacts) decision
}

// callFacts is what the tier knows about a call beyond the call itself.
type callFacts struct {
	ParentExe string // the caller's parent's executable; "" if unknown
	Wrote     bool   // the call's path was created or opened for writing earlier in this run
	// StdioSocket: the caller's descriptor 0, 1 or 2 is a socket (the
	// shape of a reverse shell; inetd-style services too). Read for exec
	// calls only: three readlinks.
	StdioSocket bool
	// Seq is the calling thread's standing with the sequence model
	// (seqtap.go), when a tap feeds one.
	Seq   SeqThread
	SeqOK bool
}

type analysisTier struct {
	model     string // [analyzer] model
	local     localModel
	remote    remoteModel
	configBud time.Duration
	budget    atomic.Int64 // ns, the budget in force
	onTimeout decision
	audit     bool     // [analyzer] mode = "audit": record verdicts, let def decide
	def       decision // the [supervisor] default

	mu      sync.Mutex
	cache   map[string]decision // by analysisKey; bounded
	pending map[string]bool

	// What the sandboxed tree wrote (allowed creates, writes, renames'
	// targets), bounded; and parents' executables by PID. Receive thread
	// only.
	written    map[string]struct{}
	parentExes map[int]string
	seqThread  func(tid int) (SeqThread, bool) // the sequence model's view of a thread; nil without one

	overruns, deferred, failures, analyzed, wouldDeny atomic.Uint64
	hist                                              [histBuckets]atomic.Uint64 // time to a verdict (or to on_timeout), ns
	streakOver, streakIn                              int                        // on the receive thread only
}

const maxAnalysisCache = 4096

// remoteTimeout bounds one remote analysis that has already overrun its
// budget: it goes on in the background until then, for the cache.
const remoteTimeout = 5 * time.Second

// analysisConfigured reports whether p puts undecided calls to a model.
func analysisConfigured(p *profiles.Profile) bool {
	switch p.Analyzer.Model {
	case "builtin":
		return true
	case "http", "chat":
		return p.Analyzer.Endpoint != ""
	}
	return false
}

// newAnalysisTier returns the tier for a, or nil when a puts nothing to a
// model. An error means the model cannot be used: the launch fails rather
// than run with a weaker profile.
func newAnalysisTier(a profiles.Analyzer, def decision) (*analysisTier, error) {
	t := &analysisTier{model: a.Model, configBud: a.Budget, audit: a.Audit, def: def, cache: map[string]decision{}, pending: map[string]bool{},
		written: map[string]struct{}{}, parentExes: map[int]string{}}
	client := &http.Client{Timeout: remoteTimeout}
	switch a.Model {
	case "builtin":
		m, err := newRiskModel()
		if err != nil {
			return nil, fmt.Errorf("analyzer: builtin model: %w", err)
		}
		if m == nil {
			return nil, nil
		}
		t.local = m
	case "http":
		if a.Endpoint == "" {
			return nil, nil
		}
		t.remote = &scoringModel{endpoint: a.Endpoint, client: client}
	case "chat":
		if a.Endpoint == "" {
			return nil, nil
		}
		t.remote = &chatModel{endpoint: a.Endpoint, model: a.ChatModel, client: client}
	default:
		return nil, nil
	}
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
	return t, nil
}

// analysisKey is the call a verdict is cached for: who (the executable),
// what (the call, its access and flags) and on what (paths or address,
// argv for an exec; for a call with no pointer argument, its scalar
// arguments). Everything the request shows the model that could change
// its verdict is in the key, so a cached allow of a read never answers
// a write, nor an exec's verdict another argv.
func analysisKey(c *analyzer.Call) string {
	var b strings.Builder
	b.WriteString(c.Process.Exe)
	fmt.Fprintf(&b, "\x00%s\x00%d\x00%x\x00%o\x00%s\x00%s", c.Name, c.Access, c.Flags, c.Mode, c.Path, c.Path2)
	switch {
	case c.Addr != nil:
		b.WriteString("\x00" + endpointText(c.Addr))
	case c.Kind == analyzer.KindOther:
		fmt.Fprintf(&b, "\x00%x", c.Args)
	}
	for _, a := range c.Argv {
		b.WriteString("\x00" + a)
	}
	return b.String()
}

// decide returns the model's verdict for c, or on_timeout when none is
// ready within the budget (the analysis goes on and is cached).
func (t *analysisTier) decide(c *analyzer.Call) decision {
	start := time.Now()
	d := t.decideTimed(c, start)
	t.hist[histIndex(uint64(time.Since(start)))].Add(1)
	if t.audit {
		return t.audited(d)
	}
	return d
}

// audited turns the model's verdict into a record of it: the [supervisor]
// default decides, and the rule text says what the model would have done.
func (t *analysisTier) audited(d decision) decision {
	out := t.def
	out.nocache = true
	switch d.action {
	case profiles.ActionErrno, profiles.ActionKill:
		t.wouldDeny.Add(1)
		out.modelWouldDeny = true
		out.rule = "[supervisor] default; analyzer (mode audit) would deny: " + d.rule
	default:
		out.rule = "[supervisor] default; analyzer (mode audit): " + d.rule
	}
	return out
}

func (t *analysisTier) decideTimed(c *analyzer.Call, start time.Time) decision {
	if t.local != nil {
		f := t.facts(c)
		d := t.local.decide(c, &f)
		t.analyzed.Add(1)
		if time.Since(start) > time.Duration(t.budget.Load()) {
			t.overrun()
		} else {
			t.inBudget()
		}
		return d
	}
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
	req := requestOf(c)
	f := t.facts(c)
	req.ParentExe, req.Wrote, req.StdioSocket = f.ParentExe, f.Wrote, f.StdioSocket
	if f.SeqOK {
		score := f.Seq.Score
		req.SeqScore, req.SeqThreshold, req.SeqAnomalous = &score, f.Seq.Threshold, f.Seq.Anomalous
	}
	done := make(chan decision, 1)
	go func() {
		d, ok := t.askRemote(req)
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

// maxWritten bounds the set of written paths the tier remembers.
const maxWritten = 8192

// noteAllowed records what an allowed call wrote, for callFacts.Wrote.
func (t *analysisTier) noteAllowed(c *analyzer.Call) {
	if c.Access&analyzer.AccessWrite == 0 || c.Path == "" {
		return
	}
	if len(t.written) >= maxWritten {
		clear(t.written)
	}
	p := c.Path
	if c.Kind == analyzer.KindRename && c.Path2 != "" {
		p = c.Path2
	}
	t.written[p] = struct{}{}
}

func (t *analysisTier) facts(c *analyzer.Call) callFacts {
	var f callFacts
	if c.Path != "" {
		_, f.Wrote = t.written[c.Path]
	}
	if pp := c.Process.PPID; pp > 0 {
		exe, ok := t.parentExes[pp]
		if !ok {
			exe, _ = os.Readlink("/proc/" + strconv.Itoa(pp) + "/exe")
			if len(t.parentExes) >= 1024 {
				clear(t.parentExes)
			}
			t.parentExes[pp] = exe
		}
		f.ParentExe = exe
	}
	if c.Kind == analyzer.KindExec {
		f.StdioSocket = stdioSocket(c.Process.PID)
	}
	if t.seqThread != nil {
		f.Seq, f.SeqOK = t.seqThread(c.Process.TID)
	}
	return f
}

// stdioSocket reports whether descriptor 0, 1 or 2 of pid is a socket.
func stdioSocket(pid int) bool {
	var buf [64]byte
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	for _, fd := range [...]string{"0", "1", "2"} {
		if n, err := unix.Readlink(dir+fd, buf[:]); err == nil && strings.HasPrefix(string(buf[:n]), "socket:[") {
			return true
		}
	}
	return false
}

func requestOf(c *analyzer.Call) *AnalysisRequest {
	p := &c.Process
	req := &AnalysisRequest{Syscall: c.Name, Kind: c.Kind.String(), Args: c.Args, Path: c.Path, Path2: c.Path2, Flags: c.Flags,
		Argv: c.Argv, Exe: p.Exe, Comm: p.Comm, PID: p.PID, PPID: p.PPID, UID: p.UID, EUID: p.EUID}
	if c.Addr != nil {
		req.Addr = endpointText(c.Addr)
	}
	return req
}

func (t *analysisTier) askRemote(req *AnalysisRequest) (decision, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	ar, err := t.remote.ask(ctx, req)
	if err != nil {
		t.failures.Add(1)
		return decision{}, false
	}
	t.analyzed.Add(1)
	d := decision{source: SourceAnalyzer, layer: SourceAnalyzer, nocache: true,
		rule: fmt.Sprintf("analyzer %s: %s (score %.2f: %s)", t.remote.describe(), ar.Verdict, ar.Score, ar.Reason)}
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

// scoringModel is model = "http": archangel's own scoring API.
type scoringModel struct {
	endpoint string
	client   *http.Client
}

func (m *scoringModel) describe() string { return m.endpoint }

func (m *scoringModel) ask(ctx context.Context, req *AnalysisRequest) (AnalysisResponse, error) {
	var ar AnalysisResponse
	body, _ := json.Marshal(req)
	if err := postJSON(ctx, m.client, m.endpoint, body, &ar); err != nil {
		return ar, err
	}
	return ar, nil
}

// chatModel is model = "chat": an OpenAI-compatible chat completions
// endpoint. The call goes as the user message, in JSON; the instructions
// ask for the scoring API's JSON answer and nothing else. A reply wrapped
// in prose or a code fence is accepted when it holds exactly one JSON
// object with a valid verdict.
type chatModel struct {
	endpoint string
	model    string
	client   *http.Client
}

const chatSystemPrompt = `You are the analyzer of archangel, a Linux system-call sandbox. ` +
	`A sandboxed program made the system call described by the JSON the user sends; no rule of its profile decided it. ` +
	`Decide whether to allow it. Deny what looks like credential theft, privilege escalation, persistence, ` +
	`sandbox escape, a reverse shell, downloading and running code, or tampering with other processes; allow ordinary program behaviour. ` +
	`Answer with one JSON object and nothing else: {"verdict": "allow" or "deny", "score": risk from 0.0 to 1.0, "reason": "one short sentence"}.`

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model          string        `json:"model"`
	Messages       []chatMessage `json:"messages"`
	Temperature    float64       `json:"temperature"`
	MaxTokens      int           `json:"max_tokens"`
	ResponseFormat *struct {
		Type string `json:"type"`
	} `json:"response_format,omitempty"`
}

type chatResponse struct {
	Choices []struct {
		Message chatMessage `json:"message"`
	} `json:"choices"`
}

func (m *chatModel) describe() string { return "chat " + m.model }

func (m *chatModel) ask(ctx context.Context, req *AnalysisRequest) (AnalysisResponse, error) {
	call, _ := json.Marshal(req)
	cr := chatRequest{Model: m.model, Temperature: 0, MaxTokens: 200, Messages: []chatMessage{
		{Role: "system", Content: chatSystemPrompt},
		{Role: "user", Content: string(call)},
	}}
	cr.ResponseFormat = &struct {
		Type string `json:"type"`
	}{Type: "json_object"}
	body, _ := json.Marshal(cr)
	var resp chatResponse
	if err := postJSON(ctx, m.client, m.endpoint, body, &resp); err != nil {
		return AnalysisResponse{}, err
	}
	if len(resp.Choices) == 0 {
		return AnalysisResponse{}, errors.New("chat: no choices in the reply")
	}
	return parseChatVerdict(resp.Choices[0].Message.Content)
}

// parseChatVerdict reads the scoring API's answer out of a chat reply:
// the content itself, or the one {...} object inside it.
func parseChatVerdict(content string) (AnalysisResponse, error) {
	var ar AnalysisResponse
	s := strings.TrimSpace(content)
	if i, j := strings.IndexByte(s, '{'), strings.LastIndexByte(s, '}'); i >= 0 && j > i {
		s = s[i : j+1]
	}
	if err := json.Unmarshal([]byte(s), &ar); err != nil {
		return ar, fmt.Errorf("chat: reply is not the verdict JSON: %w", err)
	}
	if ar.Verdict != "allow" && ar.Verdict != "deny" {
		return ar, fmt.Errorf("chat: verdict %q is neither allow nor deny", ar.Verdict)
	}
	return ar, nil
}

func postJSON(ctx context.Context, client *http.Client, url string, body []byte, out any) error {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
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
