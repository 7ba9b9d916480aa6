package patterns

import (
	"testing"
	"time"
)

// BenchmarkObserve: a stream of everyday notified calls (no pattern
// completes), and the whole reverse-shell sequence.
func BenchmarkObserve(b *testing.B) {
	b.Run("nomatch", func(b *testing.B) {
		e := builtin(b)
		evs := []Event{
			ev{call: openCall(10, "/usr/lib/x86_64-linux-gnu/libc.so.6", rd)}.event(),
			ev{call: openCall(10, "/home/u/src/out.o", wr), tree: []int{9, 8, 7}}.event(),
			ev{call: execve(10, "/usr/bin/cc", "cc", "-c", "x.c"), tree: []int{9, 8, 7}}.event(),
			ev{call: connectCall(10, 3, "127.0.0.1:5432"), allowed: true}.event(),
			ev{call: sys(10, "newfstatat")}.event(),
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			e.Observe(evs[i%len(evs)])
			i++
		}
	})
	b.Run("reverse-shell", func(b *testing.B) {
		e := builtin(b)
		seq := []Event{
			ev{call: connectCall(10, 3, evil)}.event(),
			ev{call: dup2(10, 3, 0)}.event(),
			ev{call: execve(11, "/bin/sh"), tree: []int{10}}.event(),
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			x := seq[i%3]
			x.Time = t0.Add(time.Duration(i))
			if len(e.Observe(x)) == 0 && i%3 == 2 {
				b.Fatal("no match")
			}
			i++
		}
	})
}
