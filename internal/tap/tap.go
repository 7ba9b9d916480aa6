package tap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// ErrUnavailable is carried by every error of Open that means the tap
// cannot run here (no privileges, no kernel BTF, no BPF); match it with
// errors.Is. The error's text says which.
var ErrUnavailable = errors.New("syscall tap unavailable")

// Kind is what a record reports.
type Kind uint8

const (
	KindSyscall Kind = iota // a system call returned (Nr, Ret)
	KindExec                // the task replaced its image (Path, Nr = old tid)
	KindFork                // the task created a thread or process (Nr = its tid)
	KindExit                // the thread ended
)

func (k Kind) String() string {
	switch k {
	case KindSyscall:
		return "syscall"
	case KindExec:
		return "exec"
	case KindFork:
		return "fork"
	case KindExit:
		return "exit"
	}
	return "unknown"
}

// Event is one record of the tap.
type Event struct {
	Time uint64 // CLOCK_MONOTONIC, ns
	TID  int32
	PID  int32 // thread group id
	Kind Kind
	Nr   int32  // syscall number; child tid (fork); old tid (exec)
	Ret  int64  // the call's return value (syscall)
	Path string // exec: the filename execve was given, as the kernel saw it
}

// Options tune a tap; the zero value is fine.
type Options struct {
	// RingBytes is the ring buffer's size, a power of two multiple of the
	// page size; default 4 MiB (104857 syscall records of 32 bytes plus
	// the ring's 8-byte header).
	RingBytes int
	// Batch is the most events handed to the callback at once; default 512.
	Batch int
	// PollInterval bounds how long a record waits in the ring buffer
	// before Run delivers it; default 20ms. The programs wake the reader
	// early only when the ring is an eighth full.
	PollInterval time.Duration
}

// Tap is an attached set of programs and the reader of their records.
type Tap struct {
	cgroupID uint64
	ring     *ebpf.Map
	lost     *ebpf.Map
	progs    []*ebpf.Program
	links    []link.Link
	reader   *ringbuf.Reader
	batch    int
	poll     time.Duration

	detachOnce sync.Once
	closeOnce  sync.Once
	stopped    chan struct{}
}

// Open attaches the tap to the tasks of the cgroup v2 directory dir and
// everything below it. Records are kept in the ring buffer until Run reads
// them.
func Open(dir string, opt Options) (_ *Tap, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	id, level, err := cgroupIDLevel(dir)
	if err != nil {
		return nil, err
	}
	if opt.RingBytes == 0 {
		opt.RingBytes = 4 << 20
	}
	if opt.Batch <= 0 {
		opt.Batch = 512
	}
	if opt.PollInterval <= 0 {
		opt.PollInterval = 20 * time.Millisecond
	}
	t := &Tap{cgroupID: id, batch: opt.Batch, poll: opt.PollInterval, stopped: make(chan struct{})}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	t.ring, err = ebpf.NewMap(&ebpf.MapSpec{Name: "archangel_tap", Type: ebpf.RingBuf, MaxEntries: uint32(opt.RingBytes)})
	if err != nil {
		return nil, unavailable("create BPF ring buffer", err)
	}
	t.lost, err = ebpf.NewMap(&ebpf.MapSpec{Name: "archangel_lost", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, unavailable("create BPF array", err)
	}
	off, err := kernelOffsets()
	if err != nil {
		return nil, err
	}
	for _, tp := range []struct {
		name string
		kind Kind
	}{
		// The process events first: a syscall record must never arrive for
		// a process whose exec or fork the tap missed.
		{"sched_process_fork", KindFork},
		{"sched_process_exec", KindExec},
		{"sched_process_exit", KindExit},
		{"sys_exit", KindSyscall},
	} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:         "arch_" + tp.kind.String(), // BPF_OBJ_NAME_LEN is 16
			Type:         ebpf.RawTracepoint,
			Instructions: program(tp.kind, off, id, level, int32(opt.RingBytes/8), t.ring, t.lost),
			License:      "Dual MIT/GPL", // bpf_probe_read_kernel{,_str} are GPL-only
		})
		if err != nil {
			return nil, unavailable("load BPF program for "+tp.name, err)
		}
		t.progs = append(t.progs, prog)
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp.name, Program: prog})
		if err != nil {
			return nil, unavailable("attach to raw tracepoint "+tp.name, err)
		}
		t.links = append(t.links, l)
	}
	t.reader, err = ringbuf.NewReader(t.ring)
	if err != nil {
		return nil, unavailable("read BPF ring buffer", err)
	}
	return t, nil
}

// unavailable marks err as ErrUnavailable when it means the tap cannot
// run here (privileges, kernel features); anything else, such as a
// verifier rejection of the programs, is a bug and stays a plain error.
func unavailable(op string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %s: %v (needs CAP_BPF and CAP_PERFMON: run archangel as root)", ErrUnavailable, op, err)
	case errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.ENOSYS) || errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
	}
	return fmt.Errorf("syscall tap: %s: %w", op, err)
}

// CgroupID is the id of the cgroup the tap watches.
func (t *Tap) CgroupID() uint64 { return t.cgroupID }

// Run reads records and hands them to deliver in batches, in ring buffer
// order, until Stop (after which it delivers what is left and returns nil)
// or Close. deliver runs on Run's goroutine; the slice is reused after it
// returns.
func (t *Tap) Run(deliver func([]Event)) error {
	defer close(t.stopped)
	var rec ringbuf.Record
	batch := make([]Event, 0, t.batch)
	flush := func() {
		if len(batch) > 0 {
			deliver(batch)
			batch = batch[:0]
		}
	}
	for {
		t.reader.SetDeadline(time.Now().Add(t.poll))
		err := t.reader.ReadInto(&rec)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			flush()
			continue
		case errors.Is(err, ringbuf.ErrFlushed):
			flush()
			return nil
		case errors.Is(err, os.ErrClosed):
			flush()
			return nil
		case err != nil:
			flush()
			return fmt.Errorf("read syscall tap: %w", err)
		}
		if ev, ok := decode(rec.RawSample); ok {
			batch = append(batch, ev)
		}
		if len(batch) == cap(batch) || rec.Remaining == 0 {
			flush()
		}
	}
}

func decode(b []byte) (Event, bool) {
	if len(b) < recSize {
		return Event{}, false
	}
	le := binary.LittleEndian
	ev := Event{
		Time: le.Uint64(b[0:]),
		TID:  int32(le.Uint32(b[8:])),
		PID:  int32(le.Uint32(b[12:])),
		Kind: Kind(le.Uint32(b[16:])),
		Nr:   int32(le.Uint32(b[20:])),
		Ret:  int64(le.Uint64(b[24:])),
	}
	if ev.Kind == KindExec && len(b) > recSize {
		p := b[recSize:]
		if i := bytes.IndexByte(p, 0); i >= 0 {
			p = p[:i]
		}
		ev.Path = string(p)
	}
	return ev, true
}

// Stop detaches the programs, so that no record is added, and makes Run
// deliver every record already in the ring buffer and return; Wait waits
// for that.
func (t *Tap) Stop() {
	t.detach()
	if t.reader != nil {
		_ = t.reader.Flush()
	}
}

// Wait blocks until Run has returned.
func (t *Tap) Wait() { <-t.stopped }

func (t *Tap) detach() {
	t.detachOnce.Do(func() {
		// Each detach waits for an RCU grace period
		// (tracepoint_synchronize_unregister), ~75 ms here: in parallel,
		// the four cost one.
		var wg sync.WaitGroup
		for _, l := range t.links {
			wg.Go(func() { _ = l.Close() })
		}
		wg.Wait()
	})
}

// Lost is the number of records the programs could not write because the
// ring buffer was full.
func (t *Tap) Lost() uint64 {
	var v uint64
	if t.lost == nil || t.lost.Lookup(uint32(0), &v) != nil {
		return 0
	}
	return v
}

// Close detaches the programs and frees the tap; a Run in progress returns.
func (t *Tap) Close() error {
	t.closeOnce.Do(func() {
		t.detach()
		if t.reader != nil {
			_ = t.reader.Close()
		}
		for _, p := range t.progs {
			_ = p.Close()
		}
		if t.ring != nil {
			_ = t.ring.Close()
		}
		if t.lost != nil {
			_ = t.lost.Close()
		}
	})
	return nil
}

// Available reports whether this process has the privileges a tap needs:
// CAP_BPF and CAP_PERFMON in its effective set (root has both); the error
// wraps ErrUnavailable and says what is missing. Open checks it first.
func Available() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("%w: read capabilities: %v", ErrUnavailable, err)
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	var miss []string
	for _, c := range []struct {
		n    int
		name string
	}{{unix.CAP_BPF, "CAP_BPF"}, {unix.CAP_PERFMON, "CAP_PERFMON"}} {
		if !has(c.n) {
			miss = append(miss, c.name)
		}
	}
	if len(miss) > 0 {
		return fmt.Errorf("%w: needs %s (run archangel as root)", ErrUnavailable, strings.Join(miss, " and "))
	}
	return nil
}

// cgroupIDLevel returns the id of a cgroup v2 directory (its inode number,
// which is what bpf_get_current_cgroup_id reports) and its depth below the
// hierarchy's root (level 1 for a child of the root).
func cgroupIDLevel(dir string) (id uint64, level int, err error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		return 0, 0, fmt.Errorf("syscall tap: cgroup %s: %w", dir, err)
	}
	if sfs.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, 0, fmt.Errorf("syscall tap: %s is not in a cgroup v2 hierarchy", dir)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("syscall tap: cgroup %s: %w", dir, err)
	}
	for p := filepath.Clean(dir); ; {
		parent := filepath.Dir(p)
		var pst unix.Stat_t
		if parent == p || unix.Stat(parent, &pst) != nil || pst.Dev != st.Dev {
			break
		}
		level++
		p = parent
	}
	if level == 0 {
		return 0, 0, fmt.Errorf("syscall tap: %s is the root of the cgroup hierarchy: the tap would see every task", dir)
	}
	return st.Ino, level, nil
}

// kernelOffsets reads the structure offsets the programs use from the
// running kernel's BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF).
func kernelOffsets() (offsets, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return offsets{}, fmt.Errorf("%w: kernel BTF: %v", ErrUnavailable, err)
	}
	var off offsets
	for _, f := range []struct {
		typ, member string
		dst         *int16
	}{
		{"pt_regs", "orig_ax", &off.origAX},
		{"linux_binprm", "filename", &off.bprmFilename},
		{"task_struct", "pid", &off.taskPID},
	} {
		var st *btf.Struct
		if err := spec.TypeByName(f.typ, &st); err != nil {
			return offsets{}, fmt.Errorf("%w: kernel BTF has no struct %s: %v", ErrUnavailable, f.typ, err)
		}
		o, ok := memberOffset(st.Members, f.member)
		if !ok || o > math.MaxInt16-8 {
			return offsets{}, fmt.Errorf("%w: kernel BTF: no %s.%s (only x86-64 is supported)", ErrUnavailable, f.typ, f.member)
		}
		*f.dst = int16(o)
	}
	return off, nil
}

// memberOffset finds a member by name, looking into anonymous structs and
// unions, and returns its byte offset.
func memberOffset(ms []btf.Member, name string) (uint32, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m.Offset.Bytes(), true
		}
		if m.Name != "" {
			continue
		}
		var inner []btf.Member
		switch t := btf.UnderlyingType(m.Type).(type) {
		case *btf.Struct:
			inner = t.Members
		case *btf.Union:
			inner = t.Members
		}
		if o, ok := memberOffset(inner, name); ok {
			return m.Offset.Bytes() + o, true
		}
	}
	return 0, false
}
