package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor"
)

// statsCmd is `archangel stats [--json] [--watch] [PID|SOCKET]`: the live
// figures of a running supervisor, read from its control socket.
type statsCmd struct {
	JSON     bool          `help:"Print the figures as JSON (stable field names); with --watch, one line per redraw."`
	Watch    bool          `short:"w" help:"Redraw every second, like top, until interrupted or the supervisor exits."`
	Interval time.Duration `hidden:"" default:"1s" help:"Redraw interval of --watch."`
	Target   string        `arg:"" optional:"" name:"pid|socket" help:"The supervisor's PID (or the PID of a process it supervises), or its control socket. Default: the only supervisor running."`
}

// controlDir is where stats looks for sockets; tests point it elsewhere.
var controlDir = supervisor.DefaultControlDir

// controlSocketFlag maps run's --control-socket value to Cmd.ControlSocket:
// "" is the default path for this process, "none" serves no socket.
func controlSocketFlag(v string) string {
	switch v {
	case "":
		return supervisor.DefaultControlPath(os.Getpid())
	case "none":
		return ""
	}
	return v
}

func (c *statsCmd) Run(g *Globals) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return c.run(ctx, g)
}

func (c *statsCmd) run(ctx context.Context, g *Globals) error {
	path, err := c.socket()
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	if c.Watch {
		return c.watch(ctx, g, path)
	}
	raw, st, err := fetchStatus(path)
	if err != nil {
		return &exitStatus{code: 1, err: err}
	}
	if c.JSON {
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return err
		}
		b.WriteByte('\n')
		_, err := g.stdout.Write(b.Bytes())
		return err
	}
	return writeStatus(g.stdout, st)
}

// watch redraws until ctx is done (SIGINT) or the supervisor goes away.
func (c *statsCmd) watch(ctx context.Context, g *Globals, path string) error {
	interval := c.Interval
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for frame := 0; ; frame++ {
		raw, st, err := fetchStatus(path)
		switch {
		case err != nil && frame == 0:
			return &exitStatus{code: 1, err: err}
		case err != nil:
			// The supervisor exited (socket removed or nobody listening):
			// the end of the show, not a failure.
			fmt.Fprintf(g.stderr, "archangel: stats: supervisor gone: %v\n", firstLine(err))
			return nil
		case c.JSON:
			if _, err := fmt.Fprintf(g.stdout, "%s\n", bytes.TrimSpace(raw)); err != nil {
				return err
			}
		default:
			var b bytes.Buffer
			b.WriteString("\x1b[H\x1b[2J") // home, clear screen
			if err := writeStatus(&b, st); err != nil {
				return err
			}
			if _, err := g.stdout.Write(b.Bytes()); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// socket resolves the PID|SOCKET argument to a socket path.
func (c *statsCmd) socket() (string, error) {
	if c.Target == "" {
		return findSupervisor(controlDir())
	}
	if pid, err := strconv.Atoi(c.Target); err == nil && pid > 0 {
		return socketForPID(controlDir(), pid)
	}
	return c.Target, nil
}

// socketForPID finds the control socket of pid, or of the nearest ancestor
// that has one: the PID of any supervised process leads to its supervisor
// (which is a subreaper, so every target descends from it).
func socketForPID(dir string, pid int) (string, error) {
	first := filepath.Join(dir, strconv.Itoa(pid)+".sock")
	for p, hops := pid, 0; p > 1 && hops < 64; hops++ {
		path := filepath.Join(dir, strconv.Itoa(p)+".sock")
		if fi, err := os.Stat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
			return path, nil
		}
		pp, err := parentPID(p)
		if err != nil {
			break
		}
		p = pp
	}
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return "", fmt.Errorf("no process %d\n\thint: `archangel stats` with no argument finds the running supervisor", pid)
	}
	return "", fmt.Errorf("process %d is not a supervisor nor supervised by one: no %s (nor one for its parents)\n\thint: %s", pid, first, dirHint())
}

// parentPID reads the ppid field of /proc/PID/stat (proc(5)); comm, in
// parentheses, may contain spaces and parentheses, so parse after the last ')'.
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	return strconv.Atoi(f[1])
}

func dirHint() string {
	if os.Geteuid() != 0 {
		return "supervisors run by root keep their sockets in /run/archangel: try sudo"
	}
	return "supervisors run by other users keep their sockets in their $XDG_RUNTIME_DIR/archangel"
}

// findSupervisor returns the socket of the only live supervisor in dir.
func findSupervisor(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("look for supervisors: %w", err)
	}
	var live []int
	for _, e := range entries {
		pid, ok := supervisor.ParseControlPath(e.Name())
		if !ok || e.Type() != fs.ModeSocket {
			continue
		}
		// Live means listening: a supervisor killed by SIGKILL leaves its
		// socket behind, and connect(2) to it is refused.
		if c, err := net.DialTimeout("unix", filepath.Join(dir, e.Name()), time.Second); err == nil {
			c.Close()
			live = append(live, pid)
		}
	}
	switch len(live) {
	case 0:
		return "", fmt.Errorf("no running supervisor found in %s\n\thint: start one with `archangel run -- COMMAND` (it serves its figures unless --control-socket=none), or name its socket: archangel stats PATH; %s", dir, dirHint())
	case 1:
		return filepath.Join(dir, strconv.Itoa(live[0])+".sock"), nil
	}
	slices.Sort(live)
	var b strings.Builder
	fmt.Fprintf(&b, "%d supervisors are running in %s; name one (archangel stats PID):", len(live), dir)
	for _, pid := range live {
		fmt.Fprintf(&b, "\n\t%d\t%s", pid, cmdline(pid))
	}
	return "", errors.New(b.String())
}

func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "?"
	}
	s := printable(strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")))
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

// fetchStatus asks the control socket at path for the figures; raw is the
// JSON as the supervisor wrote it.
func fetchStatus(path string) (raw []byte, st supervisor.Status, err error) {
	conn, err := net.DialTimeout("unix", path, supervisor.ControlTimeout)
	if err != nil {
		return nil, st, dialError(path, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * supervisor.ControlTimeout))
	if _, err := io.WriteString(conn, "stats json\n"); err != nil {
		return nil, st, fmt.Errorf("ask %s: %w", path, err)
	}
	raw, err = io.ReadAll(io.LimitReader(conn, 16<<20))
	if err != nil {
		return nil, st, fmt.Errorf("read stats from %s: %w", path, err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, st, fmt.Errorf("read stats from %s: %w", path, err)
	}
	if st.Error != "" {
		return nil, st, fmt.Errorf("%s: %s", path, st.Error)
	}
	return raw, st, nil
}

func dialError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no control socket at %s\n\thint: is the supervisor running? `archangel stats` with no argument finds it", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("nobody answers on %s: the supervisor has exited (stale socket)", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: permission denied\n\thint: only the user running the supervisor, or root, may read its figures", path)
	}
	return fmt.Errorf("connect to %s: %w", path, err)
}

// writeStatus prints the figures as a compact table. Strings that come from
// the supervised processes (comm) are made printable: a process may name
// itself with terminal escape sequences.
func writeStatus(w io.Writer, st supervisor.Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "archangel %d: profile %s (%s), up %s, targets %d\n",
		st.PID, printable(st.Profile), printable(st.Mode), time.Duration(st.UptimeNS).Round(time.Second), st.Targets)
	fmt.Fprintf(tw, "notifications\t%d received, %d answered, %d vanished, queue depth %d\n", st.Received, st.Answered, st.Vanished, st.QueueDepth)
	fmt.Fprintf(tw, "verdicts\t%s\n", joinByCount(st.Verdicts))
	fmt.Fprintf(tw, "sources\t%s\n", joinByCount(st.Sources))
	fmt.Fprintf(tw, "cache\t%.1f%% hits (%d/%d), %d evictions, capacity %d\n",
		100*st.CacheHitRate, st.CacheHits, st.CacheHits+st.CacheMisses, st.CacheEvictions, st.CacheCapacity)
	fmt.Fprintf(tw, "decision time\tp50 %s, p99 %s\n", time.Duration(st.DecisionP50NS), time.Duration(st.DecisionP99NS))
	fmt.Fprintf(tw, "rules\t%d active, version %d\n", st.RulesActive, st.RulesVersion)
	if st.AnalyzerModel != "" {
		fmt.Fprintf(tw, "analyzer\t%s: %d analyses (p50 %s, p99 %s), %d over budget, %d deferred, %d failed; budget %s\n",
			printable(st.AnalyzerModel), st.AnalyzerDone, time.Duration(st.AnalyzerP50NS), time.Duration(st.AnalyzerP99NS),
			st.AnalyzerOverruns, st.AnalyzerDeferred, st.AnalyzerFailures, time.Duration(st.AnalyzerBudgetNS))
		if st.AnalyzerAudit {
			fmt.Fprintf(tw, "\tmode audit: %d calls the model would deny ran\n", st.AnalyzerWouldDeny)
		}
	}
	if q := st.Seq; q != nil {
		if q.Active {
			fmt.Fprintf(tw, "sequence\t%d threads scored, %d anomalous, %d calls, %d records lost\n", q.Scored, q.Anomalous, q.Calls, q.Lost)
		} else if q.Unavailable != "" {
			fmt.Fprintf(tw, "sequence\tnot fed: %s\n", printable(q.Unavailable))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(st.Busiest) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "BUSIEST\tNOTIFICATIONS")
		for _, p := range st.Busiest {
			fmt.Fprintf(tw, "%s\t%d\n", printable(p.Comm), p.Count)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	heading := "LATEST DENIALS"
	if st.Mode == profiles.ModeAudit.String() {
		heading += " (audit mode: would be denied, nothing was blocked)"
	}
	if len(st.Recent) == 0 {
		_, err := fmt.Fprintf(w, "%s: none\n", heading)
		return err
	}
	fmt.Fprintln(w, heading)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tPID\tCOMM\tSYSCALL\tVERDICT\tRULE")
	for _, d := range st.Recent {
		verdict := d.Verdict
		if d.Errno != "" {
			verdict += " " + d.Errno
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", d.Time.Local().Format("15:04:05.000"), d.PID,
			printable(d.Comm), printable(d.Syscall), printable(verdict), printable(d.Rule))
	}
	return tw.Flush()
}

// joinByCount renders {"allow": 3, "deny": 5} as "deny 5, allow 3".
func joinByCount(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", printable(k), m[k])
	}
	return strings.Join(parts, ", ")
}

// printable replaces control and other non-printing characters, and tabs
// (which would break the tables), with '?'.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
}
