package integration

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/profiles"
)

// runVictim is the test binary acting as a sandboxed program. Each victim
// prints what it observed on stdout for the test to check.
func runVictim(name string, args []string) int {
	switch name {
	case "exit":
		code, _ := strconv.Atoi(args[0])
		return code
	case "selfsignal":
		n, _ := strconv.Atoi(args[0])
		_ = unix.Kill(os.Getpid(), unix.Signal(n))
		time.Sleep(5 * time.Second)
		return 1
	case "errno":
		// errno NAME...: call each system call with zero arguments and
		// print how it ended.
		for _, sc := range args {
			fmt.Println(callByName(sc))
		}
		return 0
	case "ociruntime":
		return ociRuntimeVictim(args)
	case "errnoopen":
		// errnoopen PATH NAME...: on one locked thread, errno NAME...,
		// a pause for the sequence model to catch up, then read PATH.
		runtime.LockOSThread()
		for _, sc := range args[1:] {
			fmt.Println(callByName(sc))
		}
		time.Sleep(500 * time.Millisecond)
		if _, err := os.ReadFile(args[0]); err != nil {
			fmt.Println("open:", err)
		} else {
			fmt.Println("open ok")
		}
		return 0
	case "errnosleep":
		// errnosleep MS NAME...: errno NAME..., then sleep MS milliseconds.
		for _, sc := range args[1:] {
			fmt.Println(callByName(sc))
		}
		time.Sleep(time.Duration(atoi(args[0])) * time.Millisecond)
		fmt.Println("slept")
		return 0
	case "fork":
		// fork VICTIM ARGS...: run a child victim and relay its output.
		cmd := exec.Command(os.Args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "ARCHANGEL_VICTIM="+args[0])
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Println("child:", err)
			return 1
		}
		return 0
	case "threads":
		// threads N M: N OS threads, each making M notified getppid calls.
		return threads(atoi(args[0]), atoi(args[1]))
	case "gostress":
		return gostress(time.Duration(atoi(args[0])) * time.Millisecond)
	case "rtt":
		return rttVictim(atoi(args[0]), atoi(args[1]))
	case "race":
		return raceVictim(args[0], args[1], atoi(args[2]))
	case "statloop":
		return statVictim(atoi(args[0]), args[1])
	case "openloop":
		return openVictim(atoi(args[0]), args[1])
	case "fast":
		return fastVictim(atoi(args[0]))
	case "ptrace":
		// ptrace: seize our own child (allowed), then our parent (not a
		// descendant: denied), then read the parent's memory (denied).
		child := exec.Command("sleep", "30")
		if err := child.Start(); err != nil {
			fmt.Println("start child:", err)
			return 1
		}
		defer child.Process.Kill()
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(child.Process.Pid), 0, 0, 0, 0)
		fmt.Printf("seize child: %s\n", errnoName(e))
		if e == 0 {
			unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(child.Process.Pid), 0, 0, 0, 0)
		}
		_, _, e = unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(os.Getppid()), 0, 0, 0, 0)
		fmt.Printf("seize parent: %s\n", errnoName(e))
		var buf [8]byte
		local := []unix.Iovec{{Base: &buf[0], Len: 8}}
		remote := []unix.RemoteIovec{{Base: 0x10000, Len: 8}}
		_, err := unix.ProcessVMReadv(os.Getppid(), local, remote, 0)
		fmt.Printf("read parent memory: %v\n", err)
		return 0
	case "sleeper":
		fmt.Println("ready")
		time.Sleep(time.Minute)
		return 0
	case "deathprobe":
		// deathprobe FILE: start a grandchild that keeps making a notified
		// call, then sleep; the test kills the supervisor.
		cmd := exec.Command(os.Args[0], args[0])
		cmd.Env = append(os.Environ(), "ARCHANGEL_VICTIM=notifyloop")
		if err := cmd.Start(); err != nil {
			fmt.Println("start grandchild:", err)
			return 1
		}
		fmt.Printf("grandchild %d\n", cmd.Process.Pid)
		time.Sleep(time.Minute)
		return 0
	case "notifyloop":
		// Detach from the parent so that its death does not end us, then
		// make the notified call until it fails.
		_ = unix.Prctl(unix.PR_SET_PDEATHSIG, 0, 0, 0, 0)
		for i := 0; i < 3000; i++ {
			_, _, e := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
			if e != 0 {
				_ = os.WriteFile(args[0], []byte(errnoName(e)), 0o644)
				return 0
			}
			time.Sleep(10 * time.Millisecond)
		}
		_ = os.WriteFile(args[0], []byte("never failed"), 0o644)
		return 1
	}
	fmt.Fprintf(os.Stderr, "unknown victim %q\n", name)
	return 2
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func callByName(name string) string {
	nr, ok := profiles.SyscallNr(name)
	if !ok {
		return name + ": unknown"
	}
	r, _, e := unix.Syscall6(uintptr(nr), 0, 0, 0, 0, 0, 0)
	if e != 0 {
		return fmt.Sprintf("%s: errno=%s", name, errnoName(e))
	}
	return fmt.Sprintf("%s: ret=%d", name, r)
}

func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return strconv.Itoa(int(e))
}

func threads(n, m int) int {
	var wg sync.WaitGroup
	var ok, bad atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for j := 0; j < m; j++ {
				r, _, e := unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
				if e == 0 && int(r) > 0 {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("threads ok=%d bad=%d\n", ok.Load(), bad.Load())
	if bad.Load() != 0 {
		return 1
	}
	return 0
}

// gostress keeps the Go runtime busy (GC, preemption signals, many
// goroutines) while goroutines make notified calls: without
// WAIT_KILLABLE_RECV, SIGURG would restart those calls forever.
func gostress(d time.Duration) int {
	deadline := time.Now().Add(d)
	var calls, bad atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sink [][]byte
			for time.Now().Before(deadline) {
				_, _, e := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
				if e != 0 {
					bad.Add(1)
				}
				calls.Add(1)
				sink = append(sink, make([]byte, 4096))
				if len(sink) > 256 {
					sink = nil
					runtime.GC()
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("gostress calls=%d bad=%d\n", calls.Load(), bad.Load())
	if bad.Load() != 0 || calls.Load() == 0 {
		return 1
	}
	return 0
}

// raceVictim opens a path whose buffer another thread keeps rewriting
// between an allowed file and a denied one of the same length, and counts
// what it got. An enforcing supervisor that let the kernel re-read the
// path after its check (CONTINUE) would hand out the denied file.
func raceVictim(allowed, denied string, n int) int {
	if len(allowed) != len(denied) {
		fmt.Println("paths differ in length")
		return 2
	}
	buf := make([]byte, len(allowed)+1)
	copy(buf, allowed)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		for !stop.Load() {
			for i := range denied {
				buf[i] = denied[i]
			}
			for i := range allowed {
				buf[i] = allowed[i]
			}
		}
	}()
	var okCount, deniedCount, secret int
	content := make([]byte, 64)
	for range n {
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafePointer(&buf[0])), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
		if e != 0 {
			deniedCount++
			continue
		}
		k, _ := unix.Read(int(fd), content)
		unix.Close(int(fd))
		if string(content[:k]) == "SECRET" {
			secret++
		} else {
			okCount++
		}
	}
	stop.Store(true)
	wg.Wait()
	fmt.Printf("race ok=%d denied=%d secret=%d\n", okCount, deniedCount, secret)
	return 0
}
