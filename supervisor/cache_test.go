package supervisor

import (
	"sync"
	"testing"

	"github.com/archangel-sandbox/archangel/profiles"
)

func TestCacheHitMissEvict(t *testing.T) {
	c := newDecisionCache(8)
	if c.Capacity() != 8 {
		t.Fatalf("capacity %d, want 8", c.Capacity())
	}
	k := cacheKey{arch: 1, nr: 59}
	if _, ok := c.get(&k); ok {
		t.Fatal("hit on an empty cache")
	}
	want := decision{action: profiles.ActionErrno, errno: 13, layer: SourceRule}
	c.put(&k, want)
	got, ok := c.get(&k)
	if !ok || got != want {
		t.Fatalf("get = %+v %v, want %+v", got, ok, want)
	}
	// Different arguments are a different key.
	k2 := k
	k2.args[0] = 1
	if _, ok := c.get(&k2); ok {
		t.Fatal("hit for a key that differs in one argument")
	}
	// Fill far past capacity: the cache stays bounded and counts evictions.
	for i := range 100 {
		kk := cacheKey{arch: 1, nr: int32(i), args: [6]uint64{uint64(i)}}
		c.put(&kk, want)
	}
	n := 0
	for i := range 100 {
		kk := cacheKey{arch: 1, nr: int32(i), args: [6]uint64{uint64(i)}}
		if _, ok := c.get(&kk); ok {
			n++
		}
	}
	if n > c.Capacity() {
		t.Fatalf("%d entries present, capacity %d", n, c.Capacity())
	}
	if c.evictions.Load() == 0 {
		t.Fatal("no evictions counted")
	}
	// Invalidation drops everything.
	c.invalidate()
	for i := range 100 {
		kk := cacheKey{arch: 1, nr: int32(i), args: [6]uint64{uint64(i)}}
		if _, ok := c.get(&kk); ok {
			t.Fatal("hit after invalidate")
		}
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := newDecisionCache(64)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				k := cacheKey{arch: 1, nr: int32(i % 50), args: [6]uint64{uint64(g)}}
				d := decision{action: profiles.ActionErrno, errno: profiles.Errno(g + 1)}
				if got, ok := c.get(&k); ok && got != d {
					t.Errorf("key for goroutine %d returned %+v", g, got)
					return
				}
				c.put(&k, d)
			}
		}()
	}
	wg.Wait()
}

func TestCacheHitAllocatesNothing(t *testing.T) {
	c := newDecisionCache(4096)
	k := cacheKey{arch: 0xc000003e, nr: 110}
	c.put(&k, decision{action: profiles.ActionAllow})
	if n := testing.AllocsPerRun(1000, func() { c.get(&k) }); n != 0 {
		t.Fatalf("cache hit allocates %.1f times", n)
	}
}

func BenchmarkCacheHit(b *testing.B) {
	c := newDecisionCache(4096)
	k := cacheKey{arch: 0xc000003e, nr: 110, args: [6]uint64{1, 2, 3}}
	c.put(&k, decision{action: profiles.ActionAllow})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.get(&k); !ok {
			b.Fatal("miss")
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var s Stats
	for range 98 {
		s.observe(1000)
	}
	s.observe(1_000_000)
	s.observe(1_000_000)
	snap := s.Snapshot()
	if snap.DecisionP50NS < 1000 || snap.DecisionP50NS > 1300 {
		t.Errorf("p50 = %d ns, want about 1000", snap.DecisionP50NS)
	}
	if snap.DecisionP99NS < 1_000_000 || snap.DecisionP99NS > 1_300_000 {
		t.Errorf("p99 = %d ns, want about 1e6", snap.DecisionP99NS)
	}
}
