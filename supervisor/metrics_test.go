package supervisor

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// exposition is a parsed text-format scrape: samples by "name{labels}"
// (labels as written), and the declared type of each family.
type exposition struct {
	samples map[string]float64
	types   map[string]string
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$`)

func parseExposition(t *testing.T, r io.Reader) exposition {
	t.Helper()
	e := exposition{samples: map[string]float64{}, types: map[string]string{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 {
				t.Fatalf("line %d: bad TYPE: %q", n, line)
			}
			if _, dup := e.types[f[2]]; dup {
				t.Errorf("line %d: family %s declared twice", n, f[2])
			}
			e.types[f[2]] = f[3]
		case strings.HasPrefix(line, "# HELP "):
		case strings.HasPrefix(line, "#"), line == "":
			t.Errorf("line %d: unexpected %q", n, line)
		default:
			m := sampleLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("line %d: not a sample: %q", n, line)
			}
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				t.Fatalf("line %d: value: %v", n, err)
			}
			family := strings.TrimSuffix(strings.TrimSuffix(m[1], "_sum"), "_count")
			if _, ok := e.types[m[1]]; !ok {
				if _, ok := e.types[family]; !ok {
					t.Errorf("line %d: sample %s before its TYPE", n, m[1])
				}
			}
			key := m[1] + m[2]
			if _, dup := e.samples[key]; dup {
				t.Errorf("line %d: sample %s twice", n, key)
			}
			e.samples[key] = v
		}
	}
	return e
}

func TestWriteMetrics(t *testing.T) {
	snap := fakeSnapshot()
	snap.Profile = "we\"b\\\n"
	st := Status{Snapshot: snap, QueueDepth: snap.QueueDepth(), Targets: 3}
	var b strings.Builder
	writeMetrics(&b, st)
	e := parseExposition(t, strings.NewReader(b.String()))

	want := []struct {
		sample, typ string
		value       float64
	}{
		{`archangel_info{profile="we\"b\\\n",mode="enforce"}`, "gauge", 1},
		{"archangel_notifications_received_total", "counter", 10},
		{"archangel_notifications_answered_total", "counter", 7},
		{"archangel_notifications_vanished_total", "counter", 1},
		{`archangel_decisions_total{source="cache",verdict="allow"}`, "counter", 3},
		{`archangel_decisions_total{source="rule",verdict="allow"}`, "counter", 3},
		{`archangel_decisions_total{source="rule",verdict="deny"}`, "counter", 4},
		{"archangel_cache_hits_total", "counter", 3},
		{"archangel_cache_misses_total", "counter", 1},
		{"archangel_cache_evictions_total", "counter", 0},
		{"archangel_cache_capacity", "gauge", 4096},
		{`archangel_decision_seconds{quantile="0.5"}`, "summary", 4e-6},
		{`archangel_decision_seconds{quantile="0.99"}`, "summary", 20e-6},
		{"archangel_decision_seconds_sum", "summary", 65e-6},
		{"archangel_decision_seconds_count", "summary", 10},
		{"archangel_queue_depth", "gauge", 2},
		{"archangel_rules_active", "gauge", 12},
		{"archangel_rules_version", "gauge", 3},
		{"archangel_targets", "gauge", 3},
		{"archangel_handshake_seconds", "gauge", 0},
	}
	for _, w := range want {
		got, ok := e.samples[w.sample]
		if !ok {
			t.Errorf("missing %s", w.sample)
			continue
		}
		if got != w.value {
			t.Errorf("%s = %v, want %v", w.sample, got, w.value)
		}
		family, _, _ := strings.Cut(w.sample, "{")
		family = strings.TrimSuffix(strings.TrimSuffix(family, "_sum"), "_count")
		if e.types[family] != w.typ {
			t.Errorf("%s: type %q, want %q", family, e.types[family], w.typ)
		}
		delete(e.samples, w.sample)
	}
	for s := range e.samples {
		t.Errorf("unexpected sample %s (add it to this test)", s)
	}
}

func TestServeMetrics(t *testing.T) {
	srv, err := ServeMetrics("127.0.0.1:0", func() Snapshot { return fakeSnapshot() }, statsTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := "http://" + srv.(*metricsServer).Addr()
	client := &http.Client{Timeout: 5 * time.Second}

	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, ct)
	}
	e := parseExposition(t, resp.Body)
	if v := e.samples["archangel_notifications_received_total"]; v != 10 {
		t.Errorf("received = %v", v)
	}
	if _, ok := e.samples["archangel_targets"]; !ok {
		t.Error("no archangel_targets")
	}

	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/metrics?x=1", 200},
		{"HEAD", "/metrics", 200},
		{"GET", "/", 404},
		{"POST", "/metrics", 405},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		if tc.method == "HEAD" && len(body) != 0 {
			t.Errorf("HEAD: body %q", body)
		}
	}

	// Not HTTP at all: 400, and the server goes on.
	c, err := net.Dial("tcp", srv.(*metricsServer).Addr())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "hello\r\n\r\n")
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.HasPrefix(string(b), "HTTP/1.1 400 ") {
		t.Errorf("garbage request: %q", b)
	}
	// A client that connects and says nothing is cut off by Close.
	idle, err := net.Dial("tcp", srv.(*metricsServer).Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(10 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for an idle client")
	}
	if _, err := client.Get(base + "/metrics"); err == nil {
		t.Error("still serving after Close")
	}
}

func TestMetricsListenAddr(t *testing.T) {
	for _, tc := range []struct {
		addr, listen string
		loopback     bool
		err          string
	}{
		{"", DefaultMetricsAddr, true, ""},
		{"9464", "127.0.0.1:9464", true, ""},
		{"127.0.0.1:9000", "127.0.0.1:9000", true, ""},
		{"127.0.0.2:9000", "127.0.0.2:9000", true, ""},
		{"[::1]:9000", "[::1]:9000", true, ""},
		{"localhost:9000", "localhost:9000", true, ""},
		{":9464", "", false, "every interface"},
		{"0.0.0.0:9464", "0.0.0.0:9464", false, ""},
		{"[::]:9464", "[::]:9464", false, ""},
		{"10.1.2.3:9464", "10.1.2.3:9464", false, ""},
		{"metrics.example:9464", "metrics.example:9464", false, ""},
		{"127.0.0.1", "", false, "missing port"},
		{"99999", "", false, "HOST:PORT"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			listen, loopback, err := metricsListenAddr(tc.addr)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil || listen != tc.listen || loopback != tc.loopback {
				t.Errorf("= %q, %v, %v; want %q, %v", listen, loopback, err, tc.listen, tc.loopback)
			}
		})
	}
}
