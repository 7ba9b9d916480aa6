package analyzer

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// The binary form of a SeqModel, little endian throughout:
//
//	"ASQM" version(u8=1)
//	order(u8) smoothing(u8) discount(f64) window(u32) matchK(u32) matchPenalty(f64)
//	known(u32), then known × (syscall nr u32), in token order (token firstToken+i)
//	for k in 1..order: grams(u32) × (key u64, count u32), sorted by key
//	                   ctxs(u32)  × (key u64, total u32, types u32), sorted by key
//	states(u32) × (link i32, len i32), edges(u32) × (tok u8, next i32),
//	  then states+1 × off i32
//
// Keys are sorted so that one model always marshals to the same bytes.
// UnmarshalBinary checks every count against the bytes left and every
// token and state index against its range: a damaged file is an error,
// never a model that indexes out of bounds.
const seqMagic = "ASQM\x01"

// MarshalBinary encodes the model (encoding.BinaryMarshaler).
func (m *SeqModel) MarshalBinary() ([]byte, error) {
	if m.sam == nil {
		return nil, errors.New("seq model: no suffix automaton (a grid-search model cannot be saved)")
	}
	c := m.cfg
	b := []byte(seqMagic)
	le := binary.LittleEndian
	b = append(b, uint8(c.Order), uint8(c.Smoothing))
	b = le.AppendUint64(b, math.Float64bits(c.Discount))
	b = le.AppendUint32(b, uint32(c.Window))
	b = le.AppendUint32(b, uint32(c.MatchK))
	b = le.AppendUint64(b, math.Float64bits(c.MatchPenalty))

	nums := make([]int, len(m.tok))
	for s, t := range m.tok {
		nums[t-firstToken] = s
	}
	b = le.AppendUint32(b, uint32(len(nums)))
	for _, s := range nums {
		b = le.AppendUint32(b, uint32(s))
	}
	for k := 1; k <= c.Order; k++ {
		gk := slices.Sorted(maps.Keys(m.grams[k]))
		b = le.AppendUint32(b, uint32(len(gk)))
		for _, key := range gk {
			b = le.AppendUint64(b, key)
			b = le.AppendUint32(b, m.grams[k][key])
		}
		ck := slices.Sorted(maps.Keys(m.ctxs[k]))
		b = le.AppendUint32(b, uint32(len(ck)))
		for _, key := range ck {
			st := m.ctxs[k][key]
			b = le.AppendUint64(b, key)
			b = le.AppendUint32(b, st.total)
			b = le.AppendUint32(b, st.types)
		}
	}
	a := m.sam
	b = le.AppendUint32(b, uint32(len(a.slen)))
	for i := range a.slen {
		b = le.AppendUint32(b, uint32(a.link[i]))
		b = le.AppendUint32(b, uint32(a.slen[i]))
	}
	b = le.AppendUint32(b, uint32(len(a.toks)))
	for i := range a.toks {
		b = append(b, a.toks[i])
		b = le.AppendUint32(b, uint32(a.next[i]))
	}
	for _, o := range a.off {
		b = le.AppendUint32(b, uint32(o))
	}
	return b, nil
}

// UnmarshalBinary decodes a model written by MarshalBinary
// (encoding.BinaryUnmarshaler).
func (m *SeqModel) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if string(d.bytes(len(seqMagic))) != seqMagic {
		return errors.New("seq model: not a sequence model (bad magic or version)")
	}
	var c SeqConfig
	c.Order = int(d.u8())
	c.Smoothing = Smoothing(d.u8())
	c.Discount = math.Float64frombits(d.u64())
	c.Window = int(int32(d.u32()))
	c.MatchK = int(int32(d.u32()))
	c.MatchPenalty = math.Float64frombits(d.u64())
	if d.err != nil {
		return d.err
	}
	if c.Smoothing != KneserNey && c.Smoothing != WittenBell {
		return fmt.Errorf("seq model: unknown smoothing %d", c.Smoothing)
	}
	if err := c.validate(); err != nil {
		return err
	}
	if math.IsNaN(c.MatchPenalty) || math.IsInf(c.MatchPenalty, 0) || c.Window > 1<<20 {
		return errors.New("seq model: bad score settings")
	}
	known := d.count(4)
	if known > maxKnown {
		return fmt.Errorf("seq model: %d known syscalls, at most %d", known, maxKnown)
	}
	out := &SeqModel{cfg: c, tok: make(map[int]uint8, known), vocab: 1 + known}
	for i := range known {
		s := int(int32(d.u32()))
		if _, dup := out.tok[s]; dup {
			return fmt.Errorf("seq model: syscall %d listed twice", s)
		}
		out.tok[s] = uint8(firstToken + i)
	}
	maxTok := uint64(firstToken + known) // tokens are < maxTok, or tokSEP in the automaton
	validKey := func(key uint64, k int) bool {
		for i := range k {
			t := key >> (8 * i) & 0xff
			if t >= maxTok {
				return false
			}
		}
		return k >= 8 || key>>(8*k) == 0
	}
	for k := 1; k <= c.Order; k++ {
		n := d.count(12)
		g := make(map[uint64]uint32, n)
		for range n {
			key, v := d.u64(), d.u32()
			if d.err == nil && !validKey(key, k) {
				return fmt.Errorf("seq model: bad %d-gram key %#x", k, key)
			}
			g[key] = v
		}
		n = d.count(16)
		cx := make(map[uint64]ctxStat, n)
		for range n {
			key, total, types := d.u64(), d.u32(), d.u32()
			if d.err == nil && (!validKey(key, k-1) || total == 0) {
				return fmt.Errorf("seq model: bad %d-gram context %#x", k, key)
			}
			cx[key] = ctxStat{total: total, types: types}
		}
		out.grams[k], out.ctxs[k] = g, cx
	}
	if d.err != nil {
		return d.err
	}

	states := d.count(8)
	if states == 0 {
		return errors.New("seq model: empty suffix automaton")
	}
	a := &suffixAutomaton{link: make([]int32, states), slen: make([]int32, states)}
	for i := range states {
		a.link[i], a.slen[i] = int32(d.u32()), int32(d.u32())
		if d.err == nil && (a.link[i] < -1 || int(a.link[i]) >= states || a.slen[i] < 0 || (i == 0) != (a.link[i] == -1)) {
			return fmt.Errorf("seq model: bad suffix link in state %d", i)
		}
	}
	for i := 1; i < states; i++ {
		// step follows suffix links until state 0: each must lead to a
		// shorter string, or a damaged file could make it loop forever.
		if d.err == nil && a.slen[a.link[i]] >= a.slen[i] {
			return fmt.Errorf("seq model: suffix link of state %d does not shorten", i)
		}
	}
	edges := d.count(5)
	a.toks, a.next = make([]uint8, edges), make([]int32, edges)
	for i := range edges {
		a.toks[i], a.next[i] = d.u8(), int32(d.u32())
		if d.err == nil && (a.next[i] < 0 || int(a.next[i]) >= states || (a.toks[i] != tokSEP && uint64(a.toks[i]) >= maxTok)) {
			return fmt.Errorf("seq model: bad transition %d", i)
		}
	}
	if d.err == nil && len(d.b) < 4*(states+1) {
		return errors.New("seq model: truncated")
	}
	a.off = make([]int32, states+1)
	for i := range a.off {
		a.off[i] = int32(d.u32())
		if d.err == nil && (a.off[i] < 0 || int(a.off[i]) > edges || i > 0 && a.off[i] < a.off[i-1]) {
			return fmt.Errorf("seq model: bad transition offsets at state %d", i)
		}
	}
	if d.err != nil {
		return d.err
	}
	if a.off[0] != 0 || int(a.off[states]) != edges {
		return errors.New("seq model: transition offsets do not cover the transitions")
	}
	for s := range states {
		// trans binary-searches each state's edges: they must be sorted.
		if !slices.IsSortedFunc(a.toks[a.off[s]:a.off[s+1]], cmp.Compare[uint8]) {
			return fmt.Errorf("seq model: transitions of state %d not sorted", s)
		}
	}
	if len(d.b) != 0 {
		return fmt.Errorf("seq model: %d bytes after the model", len(d.b))
	}
	out.sam = a
	*m = *out
	return nil
}

// decoder reads little-endian values; the first short read sets err and
// every later read returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = errors.New("seq model: truncated")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8 {
	if v := d.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.bytes(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.bytes(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// count reads a u32 element count and checks that that many elements of
// size bytes each can follow.
func (d *decoder) count(size int) int {
	n := d.u32()
	if d.err == nil && uint64(n)*uint64(size) > uint64(len(d.b)) {
		d.err = fmt.Errorf("seq model: count %d exceeds the %d bytes left", n, len(d.b))
		return 0
	}
	return int(n)
}
