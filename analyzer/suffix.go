package analyzer

// suffixAutomaton is the suffix automaton (Blumer et al. 1985) of the
// training traces joined by tokSEP: its states recognise exactly the
// substrings of the training data, so walking it along a stream gives, for
// each call, the longest suffix of the stream that occurs in some training
// trace. A stream never contains tokSEP, so no match spans two traces.
// Transitions are stored compactly: the edges of state s are
// toks/next[off[s]:off[s+1]], sorted by token.
type suffixAutomaton struct {
	link []int32
	slen []int32 // length of the longest string in each state
	off  []int32
	toks []uint8
	next []int32
}

type samEdge struct {
	tok uint8
	to  int32
}

func buildSuffixAutomaton(traces [][]int, m *SeqModel) *suffixAutomaton {
	// Duplicate traces add no substrings.
	seen := map[string]bool{}
	var text []uint8
	for _, t := range traces {
		b := make([]uint8, len(t))
		for i, s := range t {
			b[i] = m.token(s)
		}
		if seen[string(b)] {
			continue
		}
		seen[string(b)] = true
		if len(text) > 0 {
			text = append(text, tokSEP)
		}
		text = append(text, b...)
	}
	return newSuffixAutomaton(text)
}

func newSuffixAutomaton(text []uint8) *suffixAutomaton {
	link := make([]int32, 1, 2*len(text)+1)
	slen := make([]int32, 1, 2*len(text)+1)
	edges := make([][]samEdge, 1, 2*len(text)+1)
	link[0] = -1
	find := func(s int32, c uint8) int32 {
		for _, e := range edges[s] {
			if e.tok == c {
				return e.to
			}
		}
		return -1
	}
	set := func(s int32, c uint8, to int32) {
		for i, e := range edges[s] {
			if e.tok == c {
				edges[s][i].to = to
				return
			}
		}
		edges[s] = append(edges[s], samEdge{c, to})
	}
	last := int32(0)
	for _, c := range text {
		cur := int32(len(slen))
		slen = append(slen, slen[last]+1)
		link = append(link, 0)
		edges = append(edges, nil)
		p := last
		for p != -1 && find(p, c) == -1 {
			set(p, c, cur)
			p = link[p]
		}
		if p != -1 {
			q := find(p, c)
			if slen[p]+1 == slen[q] {
				link[cur] = q
			} else {
				clone := int32(len(slen))
				slen = append(slen, slen[p]+1)
				link = append(link, link[q])
				edges = append(edges, append([]samEdge(nil), edges[q]...))
				for p != -1 && find(p, c) == q {
					set(p, c, clone)
					p = link[p]
				}
				link[q], link[cur] = clone, clone
			}
		}
		last = cur
	}
	a := &suffixAutomaton{link: link, slen: slen, off: make([]int32, len(slen)+1)}
	for s, es := range edges {
		a.off[s+1] = a.off[s] + int32(len(es))
	}
	a.toks = make([]uint8, a.off[len(slen)])
	a.next = make([]int32, a.off[len(slen)])
	for s, es := range edges {
		// insertion sort: most states have one or two edges
		for i := 1; i < len(es); i++ {
			for j := i; j > 0 && es[j].tok < es[j-1].tok; j-- {
				es[j], es[j-1] = es[j-1], es[j]
			}
		}
		for i, e := range es {
			a.toks[int(a.off[s])+i], a.next[int(a.off[s])+i] = e.tok, e.to
		}
	}
	return a
}

func (a *suffixAutomaton) trans(s int32, c uint8) int32 {
	lo, hi := a.off[s], a.off[s+1]
	for lo < hi {
		mid := int32(uint32(lo+hi) >> 1)
		if a.toks[mid] < c {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < a.off[s+1] && a.toks[lo] == c {
		return a.next[lo]
	}
	return -1
}

// step extends a match (state, length) by token c and returns the new
// state and the length of the longest suffix that is a training substring.
func (a *suffixAutomaton) step(state, length int32, c uint8) (int32, int32) {
	for {
		if t := a.trans(state, c); t >= 0 {
			return t, length + 1
		}
		if state == 0 {
			return 0, 0
		}
		state = a.link[state]
		length = a.slen[state]
	}
}

// bytes is the memory held by the automaton's arrays.
func (a *suffixAutomaton) bytes() int {
	return 4*(len(a.link)+len(a.slen)+len(a.off)+len(a.next)) + len(a.toks)
}
