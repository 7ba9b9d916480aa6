package integration

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Benchmarks run the real archangel binary over a victim that times its own
// system calls; compare them with ../shared/bench/limits measured in the
// same session (see README, "Performance").

// rttVictim makes n notified getppid calls on `threads` OS threads and
// prints the per-call latency quantiles and the throughput.
func rttVictim(threads, n int) int {
	lat := make([][]time.Duration, threads)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			l := make([]time.Duration, n)
			for j := range l {
				t0 := time.Now()
				unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
				l[j] = time.Since(t0)
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	fmt.Printf("p50=%d p99=%d ops_per_s=%.0f\n", all[len(all)/2].Nanoseconds(), all[len(all)*99/100].Nanoseconds(),
		float64(len(all))/elapsed.Seconds())
	return 0
}

// fastVictim times n allowed getpid calls (the kernel's fast path).
func fastVictim(n int) int {
	lat := make([]time.Duration, n)
	for j := range lat {
		t0 := time.Now()
		unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
		lat[j] = time.Since(t0)
	}
	slices.Sort(lat)
	fmt.Printf("p50=%d p99=%d\n", lat[n/2].Nanoseconds(), lat[n*99/100].Nanoseconds())
	return 0
}

// openVictim times n openat+close of path (an emulated open when the
// profile notifies @open and has [files] rules).
func openVictim(n int, path string) int {
	p, _ := unix.BytePtrFromString(path)
	lat := make([]time.Duration, n)
	for j := range lat {
		t0 := time.Now()
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafePointer(p)), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
		lat[j] = time.Since(t0)
		if e != 0 {
			fmt.Fprintln(os.Stderr, "open:", e)
			return 1
		}
		unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	}
	slices.Sort(lat)
	fmt.Printf("p50=%d p99=%d\n", lat[n/2].Nanoseconds(), lat[n*99/100].Nanoseconds())
	return 0
}

// statVictim times n newfstatat calls on path (a path-checked
// notification when the profile notifies stat and has [files] rules).
func statVictim(n int, path string) int {
	p, _ := unix.BytePtrFromString(path)
	var st unix.Stat_t
	lat := make([]time.Duration, n)
	for j := range lat {
		t0 := time.Now()
		unix.RawSyscall6(unix.SYS_NEWFSTATAT, atFDCWD, uintptr(unsafePointer(p)), uintptr(unsafeStat(&st)), 0, 0, 0)
		lat[j] = time.Since(t0)
	}
	slices.Sort(lat)
	fmt.Printf("p50=%d p99=%d\n", lat[n/2].Nanoseconds(), lat[n*99/100].Nanoseconds())
	return 0
}

var atFDCWD = uintptr(0xffffffffffffff9c) // AT_FDCWD (-100) as the kernel reads it

var benchLine = regexp.MustCompile(`p50=(\d+) p99=(\d+)(?: ops_per_s=(\d+))?`)

func benchVictim(b *testing.B, archangelArgs []string, argv []string) (p50, p99, ops float64) {
	b.Helper()
	args := append(append([]string{"run", "--no-summary"}, archangelArgs...), "--")
	var cmd *exec.Cmd
	if archangelArgs == nil {
		cmd = exec.Command(argv[0], argv[1:]...)
	} else {
		cmd = exec.Command(archangelBin, append(args, argv...)...)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	m := benchLine.FindStringSubmatch(string(out))
	if m == nil {
		b.Fatalf("victim printed %q", out)
	}
	p50, _ = strconv.ParseFloat(m[1], 64)
	p99, _ = strconv.ParseFloat(m[2], 64)
	ops, _ = strconv.ParseFloat(m[3], 64)
	return
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkNotifyRoundTrip: a notified getppid answered by the supervisor
// (decision from the cache after the first call). Compare p50/p99 with
// limits' notify.sync_poll (or notify.go_locked_sync) and ops/s with the
// C supervisor's threads cases.
func BenchmarkNotifyRoundTrip(b *testing.B) {
	for _, threads := range []int{1, 2, 8} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			var p50s, p99s, opss []float64
			for b.Loop() {
				p50, p99, ops := benchVictim(b, []string{"-p", testdata("it.toml")},
					victim("rtt", strconv.Itoa(threads), strconv.Itoa(200000/threads)))
				p50s, p99s, opss = append(p50s, p50), append(p99s, p99), append(opss, ops)
			}
			b.ReportMetric(median(p50s), "p50-ns")
			b.ReportMetric(median(p99s), "p99-ns")
			b.ReportMetric(median(opss), "ops/s")
		})
	}
}

// BenchmarkEmulatedOpen: an openat the supervisor checks against [files]
// rules and carries out itself (openat2 + ADDFD + SEND). Compare with
// limits' notify.emuopen_sync.
func BenchmarkEmulatedOpen(b *testing.B) {
	var p50s, p99s []float64
	for b.Loop() {
		p50, p99, _ := benchVictim(b, []string{"-p", testdata("files.toml")}, victim("openloop", "20000", "/etc/hostname"))
		p50s, p99s = append(p50s, p50), append(p99s, p99)
	}
	b.ReportMetric(median(p50s), "p50-ns")
	b.ReportMetric(median(p99s), "p99-ns")
}

// BenchmarkPathCheck: a notified newfstatat whose path the supervisor
// reads and denies by a [files] rule (no emulation). Compare with limits'
// notify.readpath_sync.
func BenchmarkPathCheck(b *testing.B) {
	var p50s, p99s []float64
	for b.Loop() {
		p50, p99, _ := benchVictim(b, []string{"-p", testdata("pathcheck.toml")}, victim("statloop", "20000", "/etc/shadow"))
		p50s, p99s = append(p50s, p50), append(p99s, p99)
	}
	b.ReportMetric(median(p50s), "p50-ns")
	b.ReportMetric(median(p99s), "p99-ns")
}

// BenchmarkFastPath: an allowed getpid under the default profile's filter,
// and with no filter at all in the same run.
func BenchmarkFastPath(b *testing.B) {
	for _, tc := range []struct {
		name string
		args []string
	}{{"nofilter", nil}, {"default-profile", []string{}}, {"it-profile", []string{"-p", testdata("it.toml")}}} {
		b.Run(tc.name, func(b *testing.B) {
			var p50s, p99s []float64
			for b.Loop() {
				argv := []string{selfBin, "1000000"}
				var p50, p99 float64
				if tc.args == nil {
					cmd := exec.Command(selfBin, "1000000")
					cmd.Env = append(os.Environ(), "ARCHANGEL_VICTIM=fast")
					out, err := cmd.Output()
					if err != nil {
						b.Fatal(err)
					}
					m := benchLine.FindStringSubmatch(string(out))
					p50, _ = strconv.ParseFloat(m[1], 64)
					p99, _ = strconv.ParseFloat(m[2], 64)
				} else {
					p50, p99, _ = benchVictim(b, tc.args, append([]string{"env", "ARCHANGEL_VICTIM=fast"}, argv...))
				}
				p50s, p99s = append(p50s, p50), append(p99s, p99)
			}
			b.ReportMetric(median(p50s), "p50-ns")
			b.ReportMetric(median(p99s), "p99-ns")
		})
	}
}

// BenchmarkLaunch: `archangel run -- /bin/true` against a plain spawn of
// /bin/true; the handshake alone is reported by the summary line.
func BenchmarkLaunch(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("archangel", func(b *testing.B) {
		var hs []float64
		re := regexp.MustCompile(`handshake ([0-9.]+)(µs|ms|ns)`)
		for b.Loop() {
			out, err := exec.Command(archangelBin, "run", "--", "/bin/true").CombinedOutput()
			if err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
			if m := re.FindStringSubmatch(string(out)); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				hs = append(hs, v*map[string]float64{"ns": 1, "µs": 1e3, "ms": 1e6}[m[2]])
			}
		}
		if len(hs) > 0 {
			b.ReportMetric(median(hs), "handshake-ns")
		}
	})
}

// BenchmarkAnalyzedStat: a notified newfstatat that no rule decides, put
// to the builtin risk model on every call: the end-to-end decision time
// of an analyzed event, to hold against the 100 µs budget and against
// BenchmarkPathCheck (the same call decided by a rule).
func BenchmarkAnalyzedStat(b *testing.B) {
	var p50s, p99s []float64
	for b.Loop() {
		p50, p99, _ := benchVictim(b, []string{"-p", testdata("analyzed.toml")}, victim("statloop", "20000", "/etc/hostname"))
		p50s, p99s = append(p50s, p50), append(p99s, p99)
	}
	b.ReportMetric(median(p50s), "p50-ns")
	b.ReportMetric(median(p99s), "p99-ns")
}
