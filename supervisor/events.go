package supervisor

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
)

// Event is one line of the JSON-lines event log (--events). Its fields are
// a stable interface: add, never rename.
type Event struct {
	Time     time.Time `json:"time"`
	PID      uint32    `json:"pid"`
	Comm     string    `json:"comm,omitempty"`
	Syscall  string    `json:"syscall"`
	Nr       int32     `json:"nr"`
	Arch     string    `json:"arch"`
	Args     [6]uint64 `json:"args"`
	Verdict  string    `json:"verdict"`
	Errno    string    `json:"errno,omitempty"`
	Source   string    `json:"source"`
	Layer    string    `json:"layer"`
	Rule     string    `json:"rule,omitempty"`
	Mode     string    `json:"mode"`
	Enforced bool      `json:"enforced"`

	// The decoded call, for notifications whose verdict depended on it.
	Kind  string   `json:"kind,omitempty"`
	Path  string   `json:"path,omitempty"`
	Path2 string   `json:"path2,omitempty"`
	Addr  string   `json:"addr,omitempty"`
	Argv  []string `json:"argv,omitempty"`
	Flags uint64   `json:"flags,omitempty"` // open flags, or the call's flags argument
	FMode uint32   `json:"fmode,omitempty"` // creation mode after umask

	// Who made it, for notifications archangel decoded.
	TID   int    `json:"tid,omitempty"`
	PPID  int    `json:"ppid,omitempty"`
	Exe   string `json:"exe,omitempty"`
	UID   uint32 `json:"uid"`
	EUID  uint32 `json:"euid"`
	Trunc bool   `json:"truncated,omitempty"`

	// A "sequence" line (seqtap.go): the thread's score, its program's
	// threshold, and the calls scored so far.
	Score     float64 `json:"score,omitempty"`
	Threshold float64 `json:"threshold,omitempty"`
	Calls     int     `json:"calls,omitempty"`
}

type eventLog struct {
	mu  sync.Mutex
	w   *bufio.Writer
	enc *json.Encoder
}

func newEventLog(w io.Writer) *eventLog {
	bw := bufio.NewWriterSize(w, 64<<10)
	return &eventLog{w: bw, enc: json.NewEncoder(bw)}
}

func (l *eventLog) write(e *Event) {
	l.mu.Lock()
	_ = l.enc.Encode(e)
	l.mu.Unlock()
}

func (l *eventLog) flush() {
	l.mu.Lock()
	_ = l.w.Flush()
	l.mu.Unlock()
}

const auditArchX8664 = 0xc000003e

func archName(a uint32) string {
	if a == auditArchX8664 {
		return "x86_64"
	}
	return "unknown"
}

// record writes the event log line and the debug log for one decision.
func (s *Supervisor) record(n *kernel.Notif, d decision, c *analyzer.Call) {
	e := Event{
		Time:     time.Now(),
		PID:      n.PID,
		Comm:     procComm(n.PID),
		Syscall:  syscallName(n.Data.Nr),
		Nr:       n.Data.Nr,
		Arch:     archName(n.Data.Arch),
		Args:     n.Data.Args,
		Verdict:  d.action.String(),
		Source:   d.source.String(),
		Layer:    d.layer.String(),
		Rule:     ruleText(d),
		Mode:     s.mode.String(),
		Enforced: s.mode == profiles.ModeEnforce,
	}
	if d.action == profiles.ActionErrno {
		e.Errno = d.errno.String()
	}
	if c != nil {
		e.Kind, e.Path, e.Path2, e.Argv = c.Kind.String(), c.Path, c.Path2, c.Argv
		e.Flags, e.FMode, e.Trunc = c.Flags, c.Mode, c.Truncated
		e.TID, e.PPID, e.Exe, e.UID, e.EUID = c.Process.TID, c.Process.PPID, c.Process.Exe, c.Process.UID, c.Process.EUID
		if c.Addr != nil {
			e.Addr = addrText(c.Addr)
		}
	}
	if c == nil && s.events != nil {
		e.Exe, _ = os.Readlink("/proc/" + strconv.Itoa(int(n.PID)) + "/exe")
	}
	if s.events != nil {
		s.events.write(&e)
	}
	s.logger.Debug("notification", "pid", e.PID, "syscall", e.Syscall, "nr", e.Nr, "arch", e.Arch,
		"notif_id", n.ID, "verdict", e.Verdict, "rule", e.Rule, "profile", s.profile.Name)
}

func addrText(a *analyzer.SockAddr) string {
	switch {
	case a.Unnamed:
		return "unix:(unnamed)"
	case a.Abstract:
		return "unix:@" + a.Unix
	case a.Unix != "":
		return "unix:" + a.Unix
	case a.Addr.IsValid():
		return a.Addr.String()
	}
	return fmt.Sprintf("family %d", a.Family)
}
