package supervisor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMetricsAddr is where ServeMetrics listens when given "": the
// loopback interface only.
const DefaultMetricsAddr = "127.0.0.1:9464"

// ServeMetrics serves the supervisor's figures in the Prometheus text
// exposition format (version 0.0.4) at http://ADDR/metrics. It returns once
// the address is bound; Close stops serving.
//
// The endpoint has no authentication, so it stays on loopback unless told
// otherwise with an explicit host: "" means DefaultMetricsAddr, a bare port
// "9464" means 127.0.0.1:9464, and ":9464" (every interface, by accident
// more often than not) is refused; write "0.0.0.0:9464" or "[::]:9464" to
// mean it, which is logged as a warning.
func ServeMetrics(addr string, snap func() Snapshot, logger *slog.Logger) (io.Closer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	listen, loopback, err := metricsListenAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint: %w", err)
	}
	m := &metricsServer{ln: ln, snap: snap, logger: logger, started: time.Now(), conns: map[net.Conn]struct{}{}}
	m.wg.Go(m.accept)
	if !loopback {
		logger.Warn("metrics endpoint reachable beyond loopback, without authentication", "addr", ln.Addr().String())
	} else {
		logger.Info("metrics endpoint ready", "addr", ln.Addr().String())
	}
	return m, nil
}

// metricsServer is a minimal HTTP/1.1 server: one GET per connection,
// answered with Connection: close. net/http would double the size of the
// archangel binary for what a scraper needs.
type metricsServer struct {
	ln      net.Listener
	snap    func() Snapshot
	logger  *slog.Logger
	started time.Time

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	once   sync.Once
	err    error
}

// Addr is the address actually bound (useful with port 0).
func (m *metricsServer) Addr() string { return m.ln.Addr().String() }

func (m *metricsServer) accept() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				m.logger.Warn("degraded: metrics endpoint stopped", "err", err)
			}
			return
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			c.Close()
			return
		}
		m.conns[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go func() {
			defer m.wg.Done()
			m.serve(c)
			m.mu.Lock()
			delete(m.conns, c)
			m.mu.Unlock()
			c.Close()
		}()
	}
}

const maxRequestHeader = 8 << 10

// serve answers one request: GET or HEAD /metrics; anything else is 404 or
// 405. The request body, if any, is not read.
func (m *metricsServer) serve(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	method, target, err := readRequestHead(bufio.NewReaderSize(io.LimitReader(c, maxRequestHeader), 4096))
	if err != nil {
		m.logger.Debug("metrics: bad request", "remote", c.RemoteAddr().String(), "err", err)
		writeHTTP(c, "400 Bad Request", "text/plain; charset=utf-8", []byte("bad request\n"), false)
		return
	}
	path, _, _ := strings.Cut(target, "?")
	switch {
	case path != "/metrics":
		writeHTTP(c, "404 Not Found", "text/plain; charset=utf-8", []byte("archangel serves Prometheus metrics at /metrics\n"), method == "HEAD")
	case method != "GET" && method != "HEAD":
		writeHTTP(c, "405 Method Not Allowed", "text/plain; charset=utf-8", []byte("GET or HEAD\n"), false)
	default:
		var b bytes.Buffer
		writeMetrics(&b, newStatus(m.snap(), m.started))
		writeHTTP(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", b.Bytes(), method == "HEAD")
	}
}

// readRequestHead reads an HTTP/1.x request line and skips the header
// fields up to the blank line.
func readRequestHead(r *bufio.Reader) (method, target string, err error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(line)
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
		return "", "", fmt.Errorf("request line %q", strings.TrimSpace(line))
	}
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return "", "", fmt.Errorf("header: %w", err)
		}
		if h == "\r\n" || h == "\n" {
			return f[0], f[1], nil
		}
	}
}

func writeHTTP(w io.Writer, status, contentType string, body []byte, head bool) {
	fmt.Fprintf(w, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", status, contentType, len(body))
	if !head {
		_, _ = w.Write(body)
	}
}

// Close stops serving; scrapes in progress are cut off.
func (m *metricsServer) Close() error {
	m.once.Do(func() {
		m.mu.Lock()
		m.closed = true
		for c := range m.conns {
			c.Close()
		}
		m.mu.Unlock()
		if err := m.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			m.err = err
		}
		m.wg.Wait()
	})
	return m.err
}

// metricsListenAddr applies the loopback-unless-explicit rule of
// ServeMetrics.
func metricsListenAddr(addr string) (listen string, loopback bool, err error) {
	if addr == "" {
		return DefaultMetricsAddr, true, nil
	}
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return net.JoinHostPort("127.0.0.1", addr), true, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false, fmt.Errorf("metrics address %q: %w\n\thint: write HOST:PORT, e.g. %s", addr, err, DefaultMetricsAddr)
	}
	if host == "" {
		return "", false, fmt.Errorf("metrics address %q listens on every interface, without authentication\n\thint: write 127.0.0.1:%s for this machine only, or 0.0.0.0:%s if you mean every interface", addr, port, port)
	}
	if host == "localhost" {
		return addr, true, nil
	}
	ip := net.ParseIP(host)
	return addr, ip != nil && ip.IsLoopback(), nil
}

// metricFamily writes the HELP and TYPE lines of one metric family.
func metricFamily(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func metricValue(v float64) string {
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// labelValue escapes a label value for the text format: backslash,
// double quote and newline.
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func metricSample(w io.Writer, name string, v float64, labels ...string) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=\"%s\"", labels[i], labelValue(labels[i+1]))
		}
		b.WriteByte('}')
	}
	fmt.Fprintf(w, "%s %s\n", b.String(), metricValue(v))
}

func metricSingle(w io.Writer, name, typ, help string, v float64) {
	metricFamily(w, name, typ, help)
	metricSample(w, name, v)
}

// writeMetrics writes st in the Prometheus text exposition format.
func writeMetrics(w io.Writer, st Status) {
	metricFamily(w, "archangel_info", "gauge", "The supervisor's profile and mode (always 1).")
	metricSample(w, "archangel_info", 1, "profile", st.Profile, "mode", st.Mode)

	metricSingle(w, "archangel_notifications_received_total", "counter", "Notifications received from the seccomp listener.", float64(st.Received))
	metricSingle(w, "archangel_notifications_answered_total", "counter", "Notifications answered.", float64(st.Answered))
	metricSingle(w, "archangel_notifications_vanished_total", "counter", "Notifications whose target died or whose call was interrupted before the answer.", float64(st.Vanished))

	metricFamily(w, "archangel_decisions_total", "counter", "Decisions by the layer that made them and their verdict.")
	ds := slices.Clone(st.Decisions)
	slices.SortFunc(ds, func(a, b DecisionCount) int {
		return strings.Compare(a.Source+"\x00"+a.Verdict, b.Source+"\x00"+b.Verdict)
	})
	for _, d := range ds {
		metricSample(w, "archangel_decisions_total", float64(d.Count), "source", d.Source, "verdict", d.Verdict)
	}

	metricSingle(w, "archangel_cache_hits_total", "counter", "Decision cache hits.", float64(st.CacheHits))
	metricSingle(w, "archangel_cache_misses_total", "counter", "Decision cache misses.", float64(st.CacheMisses))
	metricSingle(w, "archangel_cache_evictions_total", "counter", "Decision cache evictions.", float64(st.CacheEvictions))
	metricSingle(w, "archangel_cache_capacity", "gauge", "Decision cache capacity (entries).", float64(st.CacheCapacity))

	const nsPerS = 1e9
	metricFamily(w, "archangel_decision_seconds", "summary", "Time from receiving a notification to answering it.")
	metricSample(w, "archangel_decision_seconds", float64(st.DecisionP50NS)/nsPerS, "quantile", "0.5")
	metricSample(w, "archangel_decision_seconds", float64(st.DecisionP99NS)/nsPerS, "quantile", "0.99")
	metricSample(w, "archangel_decision_seconds_sum", float64(st.DecisionSumNS)/nsPerS)
	metricSample(w, "archangel_decision_seconds_count", float64(st.DecisionCount))

	metricSingle(w, "archangel_queue_depth", "gauge", "Notifications received and not yet answered (approximate).", float64(st.QueueDepth))
	metricSingle(w, "archangel_rules_active", "gauge", "Rules in the active rule set.", float64(st.RulesActive))
	metricSingle(w, "archangel_rules_version", "gauge", "Version of the active rule set.", float64(st.RulesVersion))
	metricSingle(w, "archangel_targets", "gauge", "Processes below the supervisor.", float64(st.Targets))
	metricSingle(w, "archangel_handshake_seconds", "gauge", "Duration of the launch handshake.", float64(st.HandshakeNS)/nsPerS)
	if q := st.Seq; q != nil && q.Active {
		metricSingle(w, "archangel_sequence_threads_total", "counter", "Threads the syscall tap followed to their end.", float64(q.Threads))
		metricSingle(w, "archangel_sequence_threads_scored_total", "counter", "Threads a sequence model scored.", float64(q.Scored))
		metricSingle(w, "archangel_sequence_anomalous_threads_total", "counter", "Threads whose accumulated surprise crossed their program's threshold.", float64(q.Anomalous))
		metricSingle(w, "archangel_sequence_calls_total", "counter", "System-call records the tap delivered.", float64(q.Calls))
		metricSingle(w, "archangel_sequence_records_lost_total", "counter", "Records the tap's ring buffer had no room for.", float64(q.Lost))
	}
	if st.AnalyzerModel != "" {
		metricSingle(w, "archangel_analyzer_analyses_total", "counter", "Analyses the model tier completed.", float64(st.AnalyzerDone))
		metricSingle(w, "archangel_analyzer_overruns_total", "counter", "Analyses that ran past the budget (answered with on_timeout, or late for an in-process model).", float64(st.AnalyzerOverruns))
		metricSingle(w, "archangel_analyzer_deferred_total", "counter", "Calls answered with on_timeout while the same analysis was still running.", float64(st.AnalyzerDeferred))
		metricSingle(w, "archangel_analyzer_failures_total", "counter", "Analyses that failed (unreachable model, bad answer) and fell back to on_timeout.", float64(st.AnalyzerFailures))
		metricSingle(w, "archangel_analyzer_budget_seconds", "gauge", "The analysis budget in force.", float64(st.AnalyzerBudgetNS)/nsPerS)
		metricFamily(w, "archangel_analyzer_seconds", "summary", "Time from asking the model tier to its verdict (or to on_timeout).")
		metricSample(w, "archangel_analyzer_seconds", float64(st.AnalyzerP50NS)/nsPerS, "quantile", "0.5")
		metricSample(w, "archangel_analyzer_seconds", float64(st.AnalyzerP99NS)/nsPerS, "quantile", "0.99")
	}
}
