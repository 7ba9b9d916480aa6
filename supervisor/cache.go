package supervisor

import (
	"sync"
	"sync/atomic"
)

// cacheKey is the canonical form of a notified call for decisions that are
// a pure function of it: architecture, syscall number and the six raw
// argument words. Only decisions that read no target memory and depend on
// no process history go into the cache (see decider.decide): for those the
// key determines the verdict, so a hit can never differ from a miss.
type cacheKey struct {
	arch uint32
	nr   int32
	args [6]uint64
}

func (k *cacheKey) hash() uint64 {
	// FNV-1a over the words, folded; cheap and allocation-free.
	h := uint64(14695981039346656037)
	mix := func(v uint64) {
		h ^= v
		h *= 1099511628211
	}
	mix(uint64(k.arch)<<32 | uint64(uint32(k.nr)))
	for _, a := range k.args {
		mix(a)
	}
	return h ^ h>>29
}

const cacheWays = 4

type cacheEntry struct {
	key  cacheKey
	val  decision
	used uint32 // generation of the last hit or insert (for eviction)
	gen  uint32 // rule-set version the entry was decided under
	ok   bool
}

type cacheSet struct {
	mu      sync.Mutex
	entries [cacheWays]cacheEntry
	tick    uint32
}

// decisionCache is a bounded, set-associative cache (4 ways per set, sets
// sharded by hash, one uncontended mutex per set). A hit allocates nothing.
type decisionCache struct {
	sets      []cacheSet
	mask      uint64
	gen       atomic.Uint32 // bumped to invalidate everything (rules changed)
	hits      atomic.Uint64
	misses    atomic.Uint64
	evictions atomic.Uint64
}

func newDecisionCache(size int) *decisionCache {
	nsets := 1
	for nsets*cacheWays < size {
		nsets <<= 1
	}
	return &decisionCache{sets: make([]cacheSet, nsets), mask: uint64(nsets - 1)}
}

// Capacity is the number of entries the cache holds at most.
func (c *decisionCache) Capacity() int { return len(c.sets) * cacheWays }

func (c *decisionCache) get(k *cacheKey) (decision, bool) {
	s := &c.sets[k.hash()&c.mask]
	gen := c.gen.Load()
	s.mu.Lock()
	for i := range s.entries {
		e := &s.entries[i]
		if e.ok && e.gen == gen && e.key == *k {
			s.tick++
			e.used = s.tick
			d := e.val
			s.mu.Unlock()
			c.hits.Add(1)
			return d, true
		}
	}
	s.mu.Unlock()
	c.misses.Add(1)
	return decision{}, false
}

func (c *decisionCache) put(k *cacheKey, d decision) {
	s := &c.sets[k.hash()&c.mask]
	gen := c.gen.Load()
	s.mu.Lock()
	victim := 0
	for i := range s.entries {
		e := &s.entries[i]
		if !e.ok || e.gen != gen || e.key == *k {
			victim = i
			break
		}
		if e.used < s.entries[victim].used {
			victim = i
		}
	}
	e := &s.entries[victim]
	if e.ok && e.gen == gen && e.key != *k {
		c.evictions.Add(1)
	}
	s.tick++
	*e = cacheEntry{key: *k, val: d, used: s.tick, gen: gen, ok: true}
	s.mu.Unlock()
}

// invalidate drops every entry (the rule set changed).
func (c *decisionCache) invalidate() { c.gen.Add(1) }
