package tap

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the traced child: TAP_TEST_CHILD=1 makes it
// run tapChild instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("TAP_TEST_CHILD") == "1" {
		os.Exit(tapChild())
	}
	os.Exit(m.Run())
}

// Counts of the calls the child makes on one locked thread. getppid,
// uname and getpgrp are calls the Go runtime itself does not make, so
// their counts on that thread are exact.
const (
	nGetppid = 1000
	nUname   = 300
	nGetpgrp = 200 // refused with EPERM by a seccomp filter on that thread
)

func tapChild() int {
	runtime.LockOSThread()
	// A filter on this thread only (no TSYNC): getpgrp fails with EPERM.
	// sys_exit must still report it (see doc.go).
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_GETPGRP, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "no_new_privs:", err)
		return 1
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, 1 /* SECCOMP_SET_MODE_FILTER */, 0, uintptr(unsafe.Pointer(&prog))); e != 0 {
		fmt.Fprintln(os.Stderr, "seccomp:", e)
		return 1
	}
	fmt.Println(unix.Gettid())
	var u unix.Utsname
	for range nGetppid {
		unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
	}
	for range nUname {
		unix.RawSyscall(unix.SYS_UNAME, uintptr(unsafe.Pointer(&u)), 0, 0)
	}
	for range nGetpgrp {
		if _, _, e := unix.RawSyscall(unix.SYS_GETPGRP, 0, 0, 0); e != unix.EPERM {
			fmt.Fprintln(os.Stderr, "getpgrp not refused:", e)
			return 1
		}
	}
	return 0
}

// newCgroup makes an empty cgroup v2 directory for the test.
func newCgroup(t *testing.T) (dir string, fd int) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var mnt string
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if ok && strings.HasPrefix(post, "cgroup2 ") {
			if f := strings.Fields(pre); len(f) >= 5 {
				mnt = f[4]
				break
			}
		}
	}
	if mnt == "" {
		skipOrFail(t, "no cgroup v2 hierarchy mounted")
	}
	dir = filepath.Join(mnt, "archangel-taptest-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		skipOrFail(t, fmt.Sprintf("create a cgroup: %v", err))
	}
	fd, err = unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Close(fd)
		for range 100 {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return dir, fd
}

func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("ARCHANGEL_REQUIRE_ALL_FEATURES") == "1" {
		t.Fatalf("%s (ARCHANGEL_REQUIRE_ALL_FEATURES=1 makes this a failure)", why)
	}
	t.Skipf("skipped: %s", why)
}

func openTap(t testing.TB, dir string) *Tap {
	t.Helper()
	tp, err := Open(dir, Options{})
	if errors.Is(err, ErrUnavailable) {
		if os.Getenv("ARCHANGEL_REQUIRE_ALL_FEATURES") == "1" {
			t.Fatalf("%v (ARCHANGEL_REQUIRE_ALL_FEATURES=1 makes this a failure)", err)
		}
		t.Skipf("skipped: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestTapRootSeesOnlyTheCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "the syscall tap needs root (CAP_BPF, CAP_PERFMON)")
	}
	dir, cgfd := newCgroup(t)
	tp := openTap(t, dir)
	defer tp.Close()

	var mu sync.Mutex
	var events []Event
	done := make(chan error, 1)
	go func() {
		done <- tp.Run(func(b []Event) {
			mu.Lock()
			events = append(events, b...)
			mu.Unlock()
		})
	}()

	// A process outside the cgroup making the same calls must not appear.
	outside := exec.Command("/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do uname >/dev/null; done")
	if err := outside.Run(); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		unix.Getppid() // this test process, outside too
	}

	self, _ := os.Executable()
	child := exec.Command(self)
	child.Env = append(os.Environ(), "TAP_TEST_CHILD=1")
	child.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgfd}
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	tid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("child's tid %q: %v", line, err)
	}
	tp.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	pid := child.Process.Pid
	counts := map[int32]int{}
	var execs, exits int
	forked := map[int32]bool{int32(pid): true}
	tids := map[int32]bool{}
	for _, ev := range events {
		if ev.PID != int32(pid) {
			t.Fatalf("record of a task outside the cgroup: %+v (child pid %d, test pid %d)", ev, pid, os.Getpid())
		}
		switch ev.Kind {
		case KindFork:
			forked[ev.Nr] = true
		case KindSyscall:
			tids[ev.TID] = true
			if ev.TID == int32(tid) {
				counts[ev.Nr]++
				if ev.Nr == unix.SYS_GETPGRP && ev.Ret != -int64(unix.EPERM) {
					t.Fatalf("getpgrp returned %d, want -EPERM", ev.Ret)
				}
			}
		case KindExec:
			execs++
			if ev.Path != self {
				t.Errorf("exec path %q, want %q", ev.Path, self)
			}
		case KindExit:
			exits++
		}
	}
	t.Logf("%d records, %d lost, child pid %d tid %d: getppid %d uname %d getpgrp %d",
		len(events), tp.Lost(), pid, tid, counts[unix.SYS_GETPPID], counts[unix.SYS_UNAME], counts[unix.SYS_GETPGRP])
	if tp.Lost() != 0 {
		t.Fatalf("%d records lost in a 4 MiB ring", tp.Lost())
	}
	for nr, want := range map[int32]int{unix.SYS_GETPPID: nGetppid, unix.SYS_UNAME: nUname, unix.SYS_GETPGRP: nGetpgrp} {
		if counts[nr] != want {
			t.Errorf("syscall %d seen %d times on tid %d, want %d", nr, counts[nr], tid, want)
		}
	}
	// Every other thread of the child (the Go runtime's) was created
	// by a fork record naming its tid (task_struct.pid from BTF).
	for id := range tids {
		if !forked[id] {
			t.Errorf("thread %d made calls but no fork record named it (forks %v)", id, forked)
		}
	}
	if len(tids) < 2 {
		t.Errorf("only %d threads seen; a Go child has several", len(tids))
	}
	if execs != 1 {
		t.Errorf("%d exec records, want 1", execs)
	}
	if exits == 0 {
		t.Errorf("no exit record")
	}
}

// TestKernelOffsets checks the offsets read from the kernel's BTF against
// what is known of them: pt_regs is the x86-64 uapi layout, where orig_ax
// is the 16th register.
func TestKernelOffsets(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("skipped: the tap supports x86-64 only")
	}
	off, err := kernelOffsets()
	if err != nil {
		skipOrFail(t, err.Error())
	}
	if off.origAX != 120 {
		t.Errorf("pt_regs.orig_ax at %d, want 120", off.origAX)
	}
	if off.bprmFilename <= 0 || off.taskPID <= 0 {
		t.Errorf("offsets %+v", off)
	}
}

// BenchmarkGetppid is the cost of a system call made by a task inside the
// tapped cgroup, with and without the tap attached. The benchmark moves a
// locked thread of its own into the cgroup (cgroup.threads needs a
// threaded cgroup, so the whole process moves) and back afterwards.
func BenchmarkGetppid(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the syscall tap needs root")
	}
	dir := benchCgroup(b)
	loop := func(b *testing.B) {
		for b.Loop() {
			unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
		}
	}
	b.Run("untapped", loop)
	b.Run("tapped-outside", func(b *testing.B) {
		tp := openTap(b, dir)
		defer tp.Close()
		loop(b)
	})
	b.Run("tapped-inside", func(b *testing.B) {
		tp := openTap(b, dir)
		defer tp.Close()
		var n int
		go tp.Run(func(ev []Event) { n += len(ev) })
		moveSelf(b, dir)
		loop(b)
		moveSelf(b, "")
		tp.Stop()
		tp.Wait()
		b.ReportMetric(float64(tp.Lost()), "lost")
	})
}

func benchCgroup(b *testing.B) string {
	b.Helper()
	mnt := ""
	m, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(m), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if ok && strings.HasPrefix(post, "cgroup2 ") {
			if f := strings.Fields(pre); len(f) >= 5 {
				mnt = f[4]
			}
		}
	}
	if mnt == "" {
		b.Skip("no cgroup v2 hierarchy")
	}
	dir := filepath.Join(mnt, "archangel-tapbench-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Skip(err)
	}
	b.Cleanup(func() { os.Remove(dir) })
	return dir
}

var origCgroup string

// moveSelf moves this process into dir, or back where it was ("").
func moveSelf(b *testing.B, dir string) {
	b.Helper()
	if dir == "" {
		dir = origCgroup
	} else if origCgroup == "" {
		own, _ := os.ReadFile("/proc/self/cgroup")
		for _, line := range strings.Split(string(own), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok {
				origCgroup = filepath.Join(filepath.Dir(dir), p)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReader is Run's cost per record: records are produced first
// (50000 getppid calls by this process inside the cgroup, the programs
// then detached), then timed while Run decodes and delivers them.
func BenchmarkReader(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the syscall tap needs root")
	}
	dir := benchCgroup(b)
	const n = 50000
	var drain time.Duration
	var records int
	for b.Loop() {
		tp := openTap(b, dir)
		runtime.LockOSThread()
		moveSelf(b, dir)
		for range n {
			unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
		}
		moveSelf(b, "")
		runtime.UnlockOSThread()
		tp.Stop()
		t0 := time.Now()
		tp.Run(func(ev []Event) { records += len(ev) })
		drain += time.Since(t0)
		if lost := tp.Lost(); lost != 0 {
			b.Fatalf("%d records lost", lost)
		}
		tp.Close()
	}
	b.ReportMetric(float64(drain.Nanoseconds())/float64(records), "ns/record")
}
