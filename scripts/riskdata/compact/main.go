// Command compact turns the event logs of scripts/riskdata/generate.sh into
// the risk model's dataset (analyzer/risk/testdata/events.jsonl.gz):
//
//	go run ./scripts/riskdata/compact -work DIR -out FILE EVENTS.jsonl...
//
// Each input file is one workload's `archangel learn --events` log, named
// WORKLOAD.jsonl; workloads named "h-..." are hostile. It replays each log
// in order and, per event:
//
//   - labels it: a stat of /archangel-riskdata/begin/TECHNIQUE opens a
//     window for the calling process, a stat of /archangel-riskdata/end
//     closes it; an event is labelled TECHNIQUE when its process or an
//     ancestor (by the PPIDs the log records) has an open window. In a
//     hostile workload, events outside every window are dropped (they are
//     interpreter start-up and preparation, neither hostile nor part of a
//     benign workload); the marker calls themselves are dropped; and so
//     are, inside a window, the calls any program makes to load and start
//     (runtimeNoise: read-only opens and stats of libraries, the loader's
//     and libc's /etc files, locale data, /dev/null and the like,
//     /proc/self; memory mappings that are not both writable and
//     executable). A technique's hostile events are its steps (the
//     connect, the dup2 onto stdio, the exec, the credential read, the
//     W+X mapping, the ptrace) and whatever its programs do beyond
//     loading themselves.
//   - reconstructs the Context the supervisor would give the model:
//     ParentExe (the last executable seen for the parent PID), Wrote (the
//     path was opened for writing, created, or renamed/linked to earlier in
//     this workload), Descendant (for ptrace, process_vm_*, pidfd_getfd,
//     kill and tgkill: the target PID descends from the caller),
//     StdioSocket (approximated: the process, or an ancestor it inherited
//     descriptors from, connected a socket and then dup2'd a descriptor
//     onto 0, 1 or 2; the log has no descriptor numbers, so any connect
//     counts, and a fork inherits the state its parent had when the child
//     first appears in the log).
//   - makes it stable across runs: the per-run work directory becomes
//     /tmp/archangel-riskdata, its fake HOME /home/user, the repository
//     /src/archangel, the archangel binary /usr/local/bin/archangel;
//     /proc/<caller's PID>/ becomes /proc/self/; pointer arguments are
//     zeroed (only the scalar arguments the features read are kept).
//   - merges identical events of one workload into one record with a count.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/archangel-sandbox/archangel/analyzer/risk"
)

// event is the subset of supervisor.Event that compact reads.
type event struct {
	PID     int       `json:"pid"`
	Comm    string    `json:"comm"`
	Syscall string    `json:"syscall"`
	Nr      int32     `json:"nr"`
	Args    [6]uint64 `json:"args"`
	Kind    string    `json:"kind"`
	Path    string    `json:"path"`
	Path2   string    `json:"path2"`
	Addr    string    `json:"addr"`
	Argv    []string  `json:"argv"`
	Flags   uint64    `json:"flags"`
	FMode   uint32    `json:"fmode"`
	PPID    int       `json:"ppid"`
	Exe     string    `json:"exe"`
	UID     uint32    `json:"uid"`
	EUID    uint32    `json:"euid"`
	Trunc   bool      `json:"truncated"`
}

// scalarArgs lists, by syscall number, the argument indexes kept: the
// scalar ones the features read. Every other argument is zeroed.
var scalarArgs = map[int32][]int{
	9: {2, 3}, 10: {2}, 329: {2}, // mmap prot+flags, mprotect and pkey_mprotect prot
	33: {0, 1}, 292: {0, 1, 2}, // dup2, dup3
	41:  {0, 1, 2},     // socket
	56:  {0},           // clone flags
	272: {0},           // unshare flags
	308: {1},           // setns nstype
	101: {0},           // ptrace request
	165: {3},           // mount flags
	62:  {1}, 234: {2}, // kill, tgkill signal
	105: {0}, 106: {0}, 122: {0}, 113: {0, 1}, 114: {0, 1}, 117: {0, 1, 2}, 119: {0, 1, 2}, // set*id
	157: {0},                              // prctl option
	135: {0},                              // personality
	319: {1},                              // memfd_create flags
	90:  {1}, 91: {1}, 268: {2}, 452: {2}, // chmod family modes
	313: {2}, // finit_module flags
}

// runtimeNoise reports whether e is part of any program's loading and
// start-up rather than of what it goes on to do (see the package doc).
func runtimeNoise(e *event) bool {
	switch e.Nr {
	case 9, 10, 11, 12, 25, 28: // mmap mprotect munmap brk mremap madvise
		return e.Args[2]&6 != 6 || e.Nr == 11 || e.Nr == 12 || e.Nr == 25 || e.Nr == 28
	}
	switch e.Kind {
	case "stat":
	case "open":
		if e.Flags&3 != 0 || e.Flags&0o1100 != 0 {
			return false
		}
	default:
		return false
	}
	p := e.Path
	for _, pre := range []string{"/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/local/lib/", "/etc/ld.so", "/usr/share/locale",
		"/usr/lib/locale", "/usr/share/zoneinfo", "/proc/self/", "/sys/devices/system/cpu", "/usr/share/terminfo", "/etc/terminfo"} {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	switch p {
	case "/etc/localtime", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/dev/null", "/dev/tty", "/dev/urandom",
		"/etc/locale.alias", "/proc/self", "/etc/selinux/config", "/proc/filesystems", "/sys/fs/selinux", "/selinux":
		return true
	}
	return false
}

// targetArg is the PID argument of the calls Descendant is computed for.
var targetArg = map[int32]int{101: 1, 310: 0, 311: 0, 62: 0, 234: 1}

func main() {
	work := flag.String("work", "", "the generator's work directory (rewritten to /tmp/archangel-riskdata)")
	out := flag.String("out", "analyzer/risk/testdata/events.jsonl.gz", "dataset to write")
	root := flag.String("root", "", "repository directory (rewritten to /src/archangel; default: the working directory)")
	archangel := flag.String("archangel", "", "archangel binary used (rewritten to /usr/local/bin/archangel; default WORK/archangel)")
	flag.Parse()
	if *root == "" {
		*root, _ = os.Getwd()
	}
	if *archangel == "" && *work != "" {
		*archangel = filepath.Join(*work, "archangel")
	}
	rw := rewriter{work: *work, root: *root, archangel: *archangel}
	files := flag.Args()
	sort.Strings(files)
	var recs []risk.Record
	for _, f := range files {
		r, err := compact(f, &rw)
		if err != nil {
			fmt.Fprintln(os.Stderr, "compact:", err)
			os.Exit(1)
		}
		recs = append(recs, r...)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compact:", err)
		os.Exit(1)
	}
	if err := risk.WriteDataset(f, recs); err != nil {
		fmt.Fprintln(os.Stderr, "compact: write:", err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "compact:", err)
		os.Exit(1)
	}
	hostile := 0
	for i := range recs {
		if recs[i].Hostile() {
			hostile++
		}
	}
	fmt.Fprintf(os.Stderr, "compact: %d records (%d hostile) from %d workloads -> %s\n", len(recs), hostile, len(files), *out)
}

type rewriter struct{ work, root, archangel string }

func (r *rewriter) s(v string) string {
	if v == "" {
		return v
	}
	if r.archangel != "" && v == r.archangel {
		return "/usr/local/bin/archangel"
	}
	if r.work != "" {
		v = strings.ReplaceAll(v, r.work+"/home", "/home/user")
		v = strings.ReplaceAll(v, r.work, "/tmp/archangel-riskdata")
	}
	if r.root != "" {
		v = strings.ReplaceAll(v, r.root, "/src/archangel")
	}
	return v
}

func selfProc(p string, pid int) string {
	pre := "/proc/" + strconv.Itoa(pid)
	if p == pre || strings.HasPrefix(p, pre+"/") {
		return "/proc/self" + p[len(pre):]
	}
	return p
}

func compact(name string, rw *rewriter) ([]risk.Record, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	workload := strings.TrimSuffix(filepath.Base(name), ".jsonl")
	hostileWorkload := strings.HasPrefix(workload, "h-")
	ppid := map[int]int{}
	exe := map[int]string{}
	window := map[int]string{} // pid -> technique
	wrote := map[string]bool{}
	connected := map[int]bool{} // pid has connected a socket (or inherited one)
	stdioSock := map[int]bool{}
	known := map[int]bool{}
	seen := map[string]int{} // dedupe key -> index in out
	var out []risk.Record

	label := func(pid int) string {
		for i, p := 0, pid; i < 64 && p > 0; i++ {
			if t, ok := window[p]; ok {
				return t
			}
			p = ppid[p]
		}
		return ""
	}
	descends := func(target, ancestor int) bool {
		for i, p := 0, ppid[target]; i < 64 && p > 0; i++ {
			if p == ancestor {
				return true
			}
			p = ppid[p]
		}
		return false
	}

	// PPIDs first, from the whole log: a child is often traced or
	// signalled before it makes a call the log decodes, while the
	// supervisor knows its parent from the start.
	var evs []event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if e.PPID > 0 && ppid[e.PID] == 0 {
			ppid[e.PID] = e.PPID
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// The first process's parent is the supervisor.
	if len(evs) > 0 {
		exe[ppid[evs[0].PID]] = "/usr/local/bin/archangel"
	}
	for _, e := range evs {
		if strings.HasPrefix(e.Path, "/archangel-riskdata/") {
			switch {
			case strings.HasPrefix(e.Path, "/archangel-riskdata/begin/"):
				window[e.PID] = strings.TrimPrefix(e.Path, "/archangel-riskdata/begin/")
			case e.Path == "/archangel-riskdata/end":
				delete(window, e.PID)
			}
			continue
		}
		if !known[e.PID] {
			// First appearance: a forked child has its parent's descriptors.
			known[e.PID] = true
			if p := ppid[e.PID]; p > 0 {
				connected[e.PID] = connected[p]
				stdioSock[e.PID] = stdioSock[p]
			}
		}
		switch {
		case e.Kind == "connect" && e.Syscall == "connect" && !strings.HasPrefix(e.Addr, "unix:"):
			connected[e.PID] = true
		case (e.Nr == 33 || e.Nr == 292) && e.Args[1] <= 2 && connected[e.PID]:
			stdioSock[e.PID] = true
		}
		tech := label(e.PID)
		if e.Exe != "" && e.Kind != "exec" {
			exe[e.PID] = e.Exe
		}
		parentExe := rw.s(exe[ppid[e.PID]])
		r := risk.Record{
			Workload: workload, Technique: tech, Syscall: e.Syscall, Nr: e.Nr, Kind: e.Kind,
			Path: rw.s(selfProc(e.Path, e.PID)), Path2: rw.s(selfProc(e.Path2, e.PID)), Addr: rw.s(e.Addr),
			Flags: e.Flags, FMode: e.FMode, Exe: rw.s(e.Exe), Comm: e.Comm, UID: e.UID, EUID: e.EUID, Trunc: e.Trunc,
			ParentExe: parentExe, StdioSocket: stdioSock[e.PID],
		}
		for _, a := range e.Argv {
			r.Argv = append(r.Argv, rw.s(a))
		}
		for _, i := range scalarArgs[e.Nr] {
			r.Args[i] = e.Args[i]
		}
		if i, ok := targetArg[e.Nr]; ok {
			r.Descendant = descends(int(int32(e.Args[i])), e.PID)
		}
		// Wrote: before this event, in this workload.
		switch e.Kind {
		case "open", "exec", "attr", "stat", "delete":
			r.Wrote = wrote[e.Path]
		}
		switch e.Kind {
		case "open":
			if e.Flags&3 != 0 || e.Flags&0o1100 != 0 {
				wrote[e.Path] = true
			}
		case "create":
			wrote[e.Path] = true
		case "rename":
			if e.Path2 != "" {
				wrote[e.Path2] = true
			}
		case "exec":
			exe[e.PID] = e.Path
		}
		if hostileWorkload && (tech == "" || runtimeNoise(&e)) {
			continue
		}
		key, _ := json.Marshal(&r)
		if i, ok := seen[string(key)]; ok {
			out[i].Count++
			continue
		}
		seen[string(key)] = len(out)
		r.Count = 1
		out = append(out, r)
	}
	return out, nil
}
