package risk

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/archangel-sandbox/archangel/analyzer"
)

// Record is one line of the risk dataset (testdata/events.jsonl.gz): an
// event from the supervisor's event log, labelled, with the context the
// generator reconstructed by replaying its workload's log in order, and
// identical events of one workload merged. Field names are short because
// the file is committed; they are stable.
type Record struct {
	Workload  string    `json:"w"`           // e.g. "git", "h-revshell-c"
	Technique string    `json:"t,omitempty"` // "" for benign events
	Count     int       `json:"n,omitempty"` // identical events merged into this one (0 means 1)
	Syscall   string    `json:"s"`
	Nr        int32     `json:"nr"`
	Args      [6]uint64 `json:"a"` // scalar arguments; pointer arguments are zeroed
	Kind      string    `json:"k,omitempty"`
	Path      string    `json:"p,omitempty"`
	Path2     string    `json:"p2,omitempty"`
	Addr      string    `json:"ad,omitempty"` // events.go addrText form
	Argv      []string  `json:"av,omitempty"`
	Flags     uint64    `json:"f,omitempty"`
	FMode     uint32    `json:"m,omitempty"`
	PID       int       `json:"pid,omitempty"` // the caller's PID at recording time (for /proc/PID paths)
	Exe       string    `json:"x,omitempty"`
	Comm      string    `json:"c,omitempty"`
	UID       uint32    `json:"u,omitempty"`
	EUID      uint32    `json:"eu,omitempty"`
	Trunc     bool      `json:"tr,omitempty"`

	// Context reconstructed by the generator (Context's fields).
	ParentExe   string `json:"px,omitempty"`
	Wrote       bool   `json:"wr,omitempty"`
	Descendant  bool   `json:"d,omitempty"`
	StdioSocket bool   `json:"ss,omitempty"`
}

// Hostile reports whether r is labelled with a technique.
func (r *Record) Hostile() bool { return r.Technique != "" }

var kindByName = func() map[string]analyzer.Kind {
	m := map[string]analyzer.Kind{}
	for k := analyzer.KindOther; k <= analyzer.KindChdir; k++ {
		m[k.String()] = k
	}
	return m
}()

// accessOf recomputes the decoder's Access for a recorded event (the
// event log does not carry it): open from the flags, the others from the
// kind.
func accessOf(k analyzer.Kind, flags uint64) analyzer.Access {
	switch k {
	case analyzer.KindOpen:
		const oWrite, oRDWR, oCreat, oTrunc, oPath = 0o1, 0o2, 0o100, 0o1000, 0o10000000
		if flags&oPath != 0 {
			return 0
		}
		a := analyzer.AccessRead
		switch {
		case flags&3 == oWrite:
			a = analyzer.AccessWrite
		case flags&3 == oRDWR:
			a |= analyzer.AccessWrite
		}
		if flags&(oCreat|oTrunc) != 0 {
			a |= analyzer.AccessWrite
		}
		return a
	case analyzer.KindStat, analyzer.KindChdir:
		return analyzer.AccessRead
	case analyzer.KindExec:
		return analyzer.AccessExec
	case analyzer.KindCreate, analyzer.KindDelete, analyzer.KindRename, analyzer.KindAttr:
		return analyzer.AccessWrite
	}
	return 0
}

// parseAddr reads events.go's addrText form back.
func parseAddr(s string) *analyzer.SockAddr {
	const afUnix, afInet, afInet6 = 1, 2, 10
	switch {
	case s == "":
		return nil
	case s == "unix:(unnamed)":
		return &analyzer.SockAddr{Family: afUnix, Unnamed: true}
	case strings.HasPrefix(s, "unix:@"):
		return &analyzer.SockAddr{Family: afUnix, Abstract: true, Unix: s[6:]}
	case strings.HasPrefix(s, "unix:"):
		return &analyzer.SockAddr{Family: afUnix, Unix: s[5:]}
	case strings.HasPrefix(s, "family "):
		n, _ := strconv.Atoi(s[7:])
		return &analyzer.SockAddr{Family: uint16(n)}
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return &analyzer.SockAddr{}
	}
	f := uint16(afInet)
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		f = afInet6
	}
	return &analyzer.SockAddr{Family: f, Addr: ap}
}

// Call rebuilds the analyzer.Call and Context the supervisor would have
// handed the model for r. seen is Context.Seen, which depends on the
// training split and is not stored.
func (r *Record) Call(seen bool) (analyzer.Call, Context) {
	k := kindByName[r.Kind]
	c := analyzer.Call{
		Nr: r.Nr, Name: r.Syscall, Arch: 0xc000003e, Args: r.Args, Kind: k, Access: accessOf(k, r.Flags),
		Path: r.Path, Path2: r.Path2, Flags: r.Flags, Mode: r.FMode, Addr: parseAddr(r.Addr), Argv: r.Argv, Truncated: r.Trunc,
		Process: analyzer.Process{PID: r.PID, TID: r.PID, Exe: r.Exe, Comm: r.Comm, UID: r.UID, EUID: r.EUID, FSUID: r.EUID},
	}
	return c, Context{ParentExe: r.ParentExe, Wrote: r.Wrote, Seen: seen, TargetDescendant: r.Descendant, StdioSocket: r.StdioSocket}
}

// ReadDataset reads a gzip-compressed JSON-lines dataset.
func ReadDataset(name string) ([]Record, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return DecodeDataset(f)
}

// DecodeDataset reads a gzip-compressed JSON-lines dataset from r.
func DecodeDataset(r io.Reader) ([]Record, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read risk dataset: %w", err)
	}
	var out []Record
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("read risk dataset: line %d: %w", line, err)
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read risk dataset: %w", err)
	}
	return out, nil
}

// WriteDataset writes recs as gzip-compressed JSON lines (the compactor's
// output format).
func WriteDataset(w io.Writer, recs []Record) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(zw)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return err
		}
	}
	return zw.Close()
}
