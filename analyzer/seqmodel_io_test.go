package analyzer

import (
	"bytes"
	"testing"
)

// A model read back scores every stream exactly as the original does.
func TestSeqModelRoundTrip(t *testing.T) {
	traces := randTraces(3, 30, 80, 20)
	traces = append(traces, []int{0, 1, 59, 231, 435, 461, -1, 0, 1}) // x86-64 numbers past 255, and a bogus -1
	for _, cfg := range []SeqConfig{
		DefaultSeqConfig(3, KneserNey, 0.75),
		DefaultSeqConfig(8, WittenBell, 0),
		{Order: 2, Smoothing: KneserNey, Discount: 0.5, Window: 0, MatchK: 3, MatchPenalty: 0.5},
	} {
		m, err := Train(traces, cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got SeqModel
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%+v: %v", cfg, err)
		}
		if b2, _ := got.MarshalBinary(); !bytes.Equal(b, b2) {
			t.Fatalf("%+v: re-marshalled bytes differ", cfg)
		}
		if got.Config() != cfg || got.Vocab() != m.Vocab() {
			t.Fatalf("config %+v vocab %d, want %+v %d", got.Config(), got.Vocab(), cfg, m.Vocab())
		}
		probe := append(randTraces(9, 10, 100, 25), []int{435, 461, 300, 59, -1, 7})
		for _, tr := range probe {
			a, c := m.NewStream(), got.NewStream()
			for _, s := range tr {
				if x, y := a.Observe(s), c.Observe(s); x != y {
					t.Fatalf("%+v: surprise %v after load, %v before", cfg, y, x)
				}
				if a.MatchLen() != c.MatchLen() {
					t.Fatalf("%+v: match length %d after load, %d before", cfg, c.MatchLen(), a.MatchLen())
				}
			}
			if a.Score() != c.Score() {
				t.Fatalf("%+v: score %v after load, %v before", cfg, c.Score(), a.Score())
			}
		}
	}
}

func TestSeqModelUnmarshalRejectsDamage(t *testing.T) {
	m, err := Train(randTraces(4, 10, 40, 8), DefaultSeqConfig(3, KneserNey, 0.75))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.MarshalBinary()
	var got SeqModel
	for _, n := range []int{0, 3, len(seqMagic), 40, len(b) / 2, len(b) - 1} {
		if err := got.UnmarshalBinary(b[:n]); err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(b))
		}
	}
	if err := got.UnmarshalBinary(append(bytes.Clone(b), 0)); err == nil {
		t.Error("trailing byte: no error")
	}
	// Flipping any single byte either fails or yields a model that scores
	// without panicking.
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0xff
		var x SeqModel
		if x.UnmarshalBinary(c) == nil {
			s := x.NewStream()
			for _, sys := range randTraces(5, 1, 100, 10)[0] {
				s.Observe(sys)
			}
		}
	}
}

func FuzzSeqModelUnmarshal(f *testing.F) {
	m, _ := Train(randTraces(6, 5, 20, 5), DefaultSeqConfig(2, WittenBell, 0))
	b, _ := m.MarshalBinary()
	f.Add(b)
	f.Add([]byte(seqMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		var x SeqModel
		if err := x.UnmarshalBinary(data); err != nil {
			return
		}
		s := x.NewStream()
		for _, sys := range []int{0, 1, 2, 3, 4, 100, 101, 102} {
			s.Observe(sys)
		}
		b2, err := x.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var y SeqModel
		if err := y.UnmarshalBinary(b2); err != nil {
			t.Fatalf("valid model does not round-trip: %v", err)
		}
	})
}
