package supervisor

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
)

// The live figures beyond stats.go's counters: decisions by source and
// verdict, the busiest processes, the latest denials and the rule set in
// force. They are read by the control socket (archangel stats) and the
// Prometheus endpoint, so the hot path (count, on the receive thread) only
// does atomic adds, one uncontended lock and a map update; /proc is read
// once per thread first seen, and for denials (which read comm anyway).

const (
	recentDenials = 20   // the ring of the latest denials
	busiestTop    = 10   // processes listed in Snapshot.Busiest
	maxThreads    = 4096 // thread -> comm cache; folded when full
	maxComms      = 1024 // distinct comm values counted; the rest is "(other)"
	otherComm     = "(other)"
)

// x86-64 execve and execveat: a thread's comm changes on exec, so its cache
// entry is dropped and the name read again at its next notification.
const (
	nrExecve   = 59
	nrExecveat = 322
)

// DecisionCount is the number of decisions one layer made with one verdict.
type DecisionCount struct {
	Source  string `json:"source"`
	Verdict string `json:"verdict"`
	Count   uint64 `json:"count"`
}

// ProcCount is one line of the "busiest processes" table: notifications by
// comm (the thread's name as the supervisor last read it, see liveStats).
type ProcCount struct {
	Comm  string `json:"comm"`
	Count uint64 `json:"count"`
}

// Denial is one of the latest denials (newest first in Snapshot.Recent).
// In audit mode it is what enforce would have denied.
type Denial struct {
	Time    time.Time `json:"time"`
	PID     uint32    `json:"pid"`
	Comm    string    `json:"comm"`
	Syscall string    `json:"syscall"`
	Verdict string    `json:"verdict"`
	Errno   string    `json:"errno,omitempty"`
	Rule    string    `json:"rule"`
}

// threadCount is the pending notification count of one thread, with the
// comm read when the supervisor first saw it.
type threadCount struct {
	comm string
	n    uint64
}

type liveStats struct {
	decisions [numSources][profiles.ActionNotify + 1]atomic.Uint64

	rulesActive  atomic.Int64
	rulesVersion atomic.Uint64

	decisionSumNS atomic.Uint64

	mu      sync.Mutex // threads, ring, next, total: taken by the receive thread per notification
	threads map[uint32]*threadCount
	ring    [recentDenials]Denial
	next    int    // ring index of the next denial
	total   uint64 // denials ever recorded in the ring

	commMu sync.Mutex // byComm: taken on a fold only (snapshot, full thread cache)
	byComm map[string]uint64
}

func (l *liveStats) init() {
	l.threads = map[uint32]*threadCount{}
	l.byComm = map[string]uint64{}
}

// count records one decided notification. denied says whether it goes to
// the latest denials; then the comm is read fresh from /proc and returned
// (for Stats.denied), otherwise count returns "".
func (l *liveStats) count(d decision, n *kernel.Notif, denied bool) (comm string) {
	if int(d.source) < len(l.decisions) && int(d.action) < len(l.decisions[0]) {
		l.decisions[d.source][d.action].Add(1)
	}
	if denied {
		// The thread's name as last read (new threads and execs read it
		// afresh), not a /proc read per denial.
		l.mu.Lock()
		if t := l.threads[n.PID]; t != nil {
			comm = t.comm
		}
		l.mu.Unlock()
		if comm == "" {
			comm = procComm(n.PID)
		}
	}
	l.mu.Lock()
	t := l.threads[n.PID]
	if t == nil {
		if len(l.threads) >= maxThreads {
			full := l.threads
			l.threads = make(map[uint32]*threadCount, len(full))
			l.mu.Unlock()
			l.fold(full) // once per maxThreads new threads: amortised O(1)
			l.mu.Lock()
		}
		c := comm
		if c == "" {
			l.mu.Unlock()
			c = procComm(n.PID) // once per thread (and per snapshot, see fold)
			l.mu.Lock()
		}
		t = &threadCount{comm: c}
		l.threads[n.PID] = t
	} else if comm != "" {
		t.comm = comm
	}
	t.n++
	if n.Data.Nr == nrExecve || n.Data.Nr == nrExecveat {
		// Counted under the old name, read again next time.
		delete(l.threads, n.PID)
		l.mu.Unlock()
		l.fold(map[uint32]*threadCount{n.PID: t})
		l.mu.Lock()
	}
	if denied {
		e := Denial{Time: time.Now(), PID: n.PID, Comm: comm, Syscall: syscallName(n.Data.Nr), Verdict: d.action.String(), Rule: ruleText(d)}
		if d.action == profiles.ActionErrno {
			e.Errno = d.errno.String()
		}
		l.ring[l.next] = e
		l.next = (l.next + 1) % recentDenials
		l.total++
	}
	l.mu.Unlock()
	return comm
}

// fold adds per-thread counts to the per-comm totals.
func (l *liveStats) fold(threads map[uint32]*threadCount) {
	l.commMu.Lock()
	defer l.commMu.Unlock()
	for _, t := range threads {
		c := t.comm
		if _, ok := l.byComm[c]; !ok && len(l.byComm) >= maxComms {
			c = otherComm
		}
		l.byComm[c] += t.n
	}
}

func (l *liveStats) observe(dt time.Duration) {
	l.decisionSumNS.Add(uint64(dt))
}

// SetRules records the rule set in force: the number of active rules and
// its version (bumped on every reload).
func (s *Stats) SetRules(active int, version uint64) {
	s.live.rulesActive.Store(int64(active))
	s.live.rulesVersion.Store(version)
}

// fill copies the live figures into out. Snapshots clear the thread cache,
// so each active thread's comm is read again (once) after every snapshot:
// a thread that exec'd without a notified execve is renamed within one
// snapshot interval.
func (l *liveStats) fill(out *Snapshot) {
	// Empty lists are [] in JSON, not null.
	out.Decisions, out.Busiest = []DecisionCount{}, []ProcCount{}
	for src := range l.decisions {
		for a := range l.decisions[src] {
			if v := l.decisions[src][a].Load(); v > 0 {
				out.Decisions = append(out.Decisions, DecisionCount{Source: Source(src).String(), Verdict: profiles.Action(a).String(), Count: v})
			}
		}
	}
	out.RulesActive = int(l.rulesActive.Load())
	out.RulesVersion = l.rulesVersion.Load()
	out.DecisionSumNS = l.decisionSumNS.Load()

	l.mu.Lock()
	threads := l.threads
	l.threads = make(map[uint32]*threadCount, len(threads))
	k := min(l.total, recentDenials)
	out.Recent = make([]Denial, 0, k)
	for i := range int(k) {
		out.Recent = append(out.Recent, l.ring[(l.next-1-i+recentDenials)%recentDenials])
	}
	l.mu.Unlock()

	l.fold(threads)
	l.commMu.Lock()
	for c, v := range l.byComm {
		out.Busiest = append(out.Busiest, ProcCount{Comm: c, Count: v})
	}
	l.commMu.Unlock()
	sort.Slice(out.Busiest, func(i, j int) bool {
		a, b := out.Busiest[i], out.Busiest[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Comm < b.Comm
	})
	if len(out.Busiest) > busiestTop {
		out.Busiest = out.Busiest[:busiestTop]
	}
}
