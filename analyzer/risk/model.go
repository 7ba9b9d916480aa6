package risk

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/archangel-sandbox/archangel/analyzer"
)

// Dim is the number of hashed feature weights.
const Dim = 1 << 15

// Model is a trained risk model: hashed-feature logistic regression
// weights, the Platt sigmoid that calibrates its margin, and the decision
// threshold. A Model is immutable and safe for concurrent use.
type Model struct {
	w         []float32 // Dim weights
	a, b      float64   // P(hostile) = 1 / (1 + exp(-(a*margin + b)))
	threshold float64
	prev      []uint8 // PrevDim prevalence counts (see argClassKey)
}

//go:embed model.bin
var embedded []byte

var (
	defaultOnce  sync.Once
	defaultModel *Model
)

// Default returns the embedded model, trained on testdata/events.jsonl.gz
// by Train with DefaultTrainConfig (`go test ./analyzer/risk -update`
// regenerates it). It panics if the embedded file is corrupt, which a test
// rules out.
func Default() *Model {
	defaultOnce.Do(func() {
		m, err := UnmarshalModel(embedded)
		if err != nil {
			panic("risk: embedded model.bin: " + err.Error())
		}
		defaultModel = m
	})
	return defaultModel
}

// Threshold is the decision threshold on Score: the smallest score that at
// most 1 in 1000 held-out benign events reach (events of benign workloads
// that the weights were not trained on; chosen on benign data only). A
// caller that wants fewer false alarms can use a higher cut.
func (m *Model) Threshold() float64 { return m.threshold }

// margin is the linear score of f.
func (m *Model) margin(f *featureSet) float64 {
	var z float64
	for i := 0; i < f.n; i++ {
		z += float64(m.w[index(f.tok[i], len(m.w))])
	}
	return z
}

func (m *Model) features(f *featureSet, c *analyzer.Call, ctx *Context) {
	features(f, c, ctx)
	addPrevalence(f, c.Kind, ctx.Seen, sysKey(c), argClassKey(c), m.prev, 0)
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// Score returns the calibrated probability that c, in context ctx, is part
// of a hostile technique. ctx may be nil (nothing known). It allocates
// nothing.
func (m *Model) Score(c *analyzer.Call, ctx *Context) float64 {
	var zero Context
	if ctx == nil {
		ctx = &zero
	}
	var f featureSet
	m.features(&f, c, ctx)
	return sigmoid(m.a*m.margin(&f) + m.b)
}

// Explain returns the features that moved c's score most, strongest
// first, as "group=value ±weight" (at most 5; the bias is left out), for
// the event log's rule text.
func (m *Model) Explain(c *analyzer.Call, ctx *Context) []string {
	var zero Context
	if ctx == nil {
		ctx = &zero
	}
	noteSys(c.Nr, c.Name)
	var f featureSet
	m.features(&f, c, ctx)
	type contrib struct {
		tok uint64
		w   float64
	}
	cs := make([]contrib, 0, f.n)
	for i := 0; i < f.n; i++ {
		if int(f.tok[i]>>56) == gBias {
			continue
		}
		cs = append(cs, contrib{f.tok[i], m.a * float64(m.w[index(f.tok[i], len(m.w))])})
	}
	sort.SliceStable(cs, func(i, j int) bool { return math.Abs(cs[i].w) > math.Abs(cs[j].w) })
	if len(cs) > 5 {
		cs = cs[:5]
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s %+.2f", describe(c.tok), c.w)
	}
	return out
}

// describe names a token for people.
func describe(tok uint64) string {
	g := int(tok >> 56)
	a, b, c := tok>>32&0xffff, tok>>16&0xffff, tok&0xffff
	pcName := func(v uint64) string {
		if v < uint64(numPathClasses) {
			return pathClass(v).String()
		}
		return strconv.FormatUint(v, 10)
	}
	prName := func(v uint64) string {
		if v < uint64(numProgClasses) {
			return progClass(v).String()
		}
		return strconv.FormatUint(v, 10)
	}
	accName := func(v uint64) string {
		s := ""
		for i, l := range "rwx" {
			if v&(1<<i) != 0 {
				s += string(l)
			}
		}
		if s == "" {
			return "-"
		}
		return s
	}
	name := "?"
	if g < numGroups {
		name = groupNames[g]
	}
	var v string
	switch g {
	case gKind:
		v = analyzer.Kind(a).String()
	case gPath, gHidden, gExeDeleted, gUnixPath:
		v = pcName(a)
	case gPath2:
		v = pcName(a) + "," + analyzer.Kind(b).String()
	case gModeX:
		v = pcName(a)
	case gWrote, gOwnDir:
		v = accName(a)
	case gExecTarget:
		v = prName(a) + "," + pcName(b)
	case gExecParent:
		v = prName(a) + "->" + prName(b)
	case gExecArgv:
		v = [...]string{"-c", "-i", "/dev/tcp", "ip:port", "argv0-differs", "argv0-[bracket]", "long-arg", "pipe-to-shell", "no-argv"}[min(a, 8)]
	case gExe:
		v = prName(a) + "," + pcName(b)
	case gParentClass:
		v = prName(a)
	case gSysPrev, gClassPrev:
		v = [...]string{"0", "1", "2-3", "4+"}[min(a, 3)] + " workloads"
	case gClassPrevKind:
		v = [...]string{"0", "1", "2-3", "4+"}[min(a, 3)] + " workloads," + analyzer.Kind(b).String()
	case gClassPrevSeen:
		v = [...]string{"0", "1", "2-3", "4+"}[min(a, 3)] + " workloads,seen=" + strconv.FormatUint(b, 10)
	case gStdioSocket:
		if a == 0xffff {
			v = "any call"
		} else {
			v = analyzer.Kind(a).String() + "," + prName(b)
		}
	case gKernelIface, gExecFileless:
		v = "yes"
	case gForeignProc:
		v = [...]string{"syscall", "/proc/PID file"}[min(a, 1)]
	case gExecWritable:
		v = "wrote=" + strconv.FormatUint(a, 10)
	case gSeen, gTrunc:
		v = strconv.FormatUint(a, 10)
	case gProt:
		v = sysName(a) + ",prot=" + accName(b) + ",anon=" + strconv.FormatUint(c, 10)
	case gWX, gProcVM:
		v = sysName(a) + "," + strconv.FormatUint(b, 10)
	case gNS:
		v = sysName(a) + "," + [...]string{"newns", "newcgroup", "newuts", "newipc", "newuser", "newpid", "newnet", "newtime"}[min(b, 7)]
	case gPtrace:
		v = "request=" + strconv.FormatUint(a, 10) + ",descendant=" + strconv.FormatUint(b, 10)
	case gAddr:
		v = "family=" + strconv.FormatUint(a, 10) + ",scope=" + [...]string{"none", "loopback", "private", "link-local", "public",
			"unspecified", "multicast", "unix-path", "unix-abstract", "unix-unnamed", "other"}[min(b, 10)]
	default:
		v = strconv.FormatUint(a, 10) + "," + strconv.FormatUint(b, 10) + "," + strconv.FormatUint(c, 10)
	}
	return name + "=" + v
}

// sysNames is filled by the callers that know names (ArgClass, dataset
// reading) so that Explain can print them; unknown numbers print as such.
var sysNames sync.Map // uint64 -> string

func noteSys(nr int32, name string) {
	if name != "" {
		sysNames.LoadOrStore(uint64(uint32(nr)), name)
	}
}

func sysName(nr uint64) string {
	if v, ok := sysNames.Load(nr); ok {
		return v.(string)
	}
	return "nr" + strconv.FormatUint(nr, 10)
}

// ArgClass is the argument class of c, the key under which a learning run
// (or a profile) counts a call as seen: Context.Seen is "this (exe,
// syscall, ArgClass) was seen while learning". It is stable (add, never
// change) and has one of these forms:
//
//	openat:etc:r            path calls: syscall, path class, access (r, w, x, combined)
//	execve:bin:shell        exec: path class and the target's program class
//	connect:inet:loopback:2 address calls: family, scope, port class (0, <1024, <32768, higher)
//	mprotect:rwx            mmap, mprotect, pkey_mprotect: prot bits (mmap adds ":anon")
//	unshare:newuser+newns   clone, unshare, setns: the namespace bits ("-" for none)
//	ptrace:16               ptrace: the request
//	dup2:stdio              dup2/dup3 onto 0, 1 or 2 ("dup2:other" otherwise)
//	mount                   other calls: the syscall name
//
// Path classes are those of the features (cred, proc-mem, etc, tmp, lib,
// bin, ...: see pathClassNames).
func ArgClass(c *analyzer.Call) string {
	noteSys(c.Nr, c.Name)
	acc := func(a analyzer.Access) string {
		s := ""
		if a&analyzer.AccessRead != 0 {
			s += "r"
		}
		if a&analyzer.AccessWrite != 0 {
			s += "w"
		}
		if a&analyzer.AccessExec != 0 {
			s += "x"
		}
		if s == "" {
			s = "-"
		}
		return s
	}
	switch {
	case c.Kind == analyzer.KindExec:
		return c.Name + ":" + classify(c.Path, c.Process.PID).String() + ":" + progOf(c.Path).String()
	case c.Addr != nil:
		fam := "family" + strconv.Itoa(int(c.Addr.Family))
		switch c.Addr.Family {
		case 1:
			fam = "unix"
		case 2:
			fam = "inet"
		case 10:
			fam = "inet6"
		}
		scope := [...]string{"none", "loopback", "private", "link-local", "public", "unspecified", "multicast", "path", "abstract", "unnamed", "other"}[addrScope(c.Addr)]
		port := "0"
		if c.Addr.Addr.IsValid() {
			port = strconv.FormatUint(portClass(c.Addr.Addr.Port()), 10)
		}
		return c.Name + ":" + fam + ":" + scope + ":" + port
	case c.Path != "":
		return c.Name + ":" + classify(c.Path, c.Process.PID).String() + ":" + acc(c.Access)
	}
	switch c.Nr {
	case nrMmap, nrMprotect, nrPkeyMprotect:
		p := c.Args[2]
		s := c.Name + ":"
		for i, l := range "rwx" {
			if p&(1<<i) != 0 {
				s += string(l)
			}
		}
		if p&7 == 0 {
			s += "-"
		}
		if c.Nr == nrMmap && c.Args[3]&0x20 != 0 {
			s += ":anon"
		}
		return s
	case nrClone, nrUnshare, 308:
		fl := c.Args[0]
		if c.Nr == 308 {
			fl = c.Args[1]
		}
		names := [...]string{"newns", "newcgroup", "newuts", "newipc", "newuser", "newpid", "newnet", "newtime"}
		var parts []string
		for i, b := range nsBits {
			if fl&b != 0 {
				parts = append(parts, names[i])
			}
		}
		if len(parts) == 0 {
			return c.Name + ":-"
		}
		return c.Name + ":" + strings.Join(parts, "+")
	case nrPtrace:
		return c.Name + ":" + strconv.FormatUint(c.Args[0], 10)
	case nrDup2, nrDup3:
		if c.Args[1] <= 2 {
			return c.Name + ":stdio"
		}
		return c.Name + ":other"
	}
	return c.Name
}

const modelMagic = "ARCHANGEL-RISK/4\n"

// MarshalBinary encodes m: the magic line, then little-endian uint32 Dim,
// float64 a, b and threshold, uint32 N and N pairs of (uint32 index,
// float32 weight) for the non-zero weights in index order, uint32 M and M
// pairs of (uint32 key, uint8 count) for the non-zero prevalence counts.
func (m *Model) MarshalBinary() ([]byte, error) {
	out := make([]byte, 0, 1<<14)
	out = append(out, modelMagic...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(m.w)))
	for _, v := range []float64{m.a, m.b, m.threshold} {
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
	}
	nz := 0
	for _, w := range m.w {
		if w != 0 {
			nz++
		}
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(nz))
	for i, w := range m.w {
		if w != 0 {
			out = binary.LittleEndian.AppendUint32(out, uint32(i))
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(w))
		}
	}
	nz = 0
	for _, v := range m.prev {
		if v != 0 {
			nz++
		}
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(nz))
	for i, v := range m.prev {
		if v != 0 {
			out = binary.LittleEndian.AppendUint32(out, uint32(i))
			out = append(out, v)
		}
	}
	return out, nil
}

// UnmarshalModel decodes what MarshalBinary wrote.
func UnmarshalModel(data []byte) (*Model, error) {
	if !strings.HasPrefix(string(data[:min(len(data), len(modelMagic))]), modelMagic) {
		return nil, errors.New("not a risk model (bad magic)")
	}
	data = data[len(modelMagic):]
	if len(data) < 32 {
		return nil, errors.New("risk model: short header")
	}
	if dim := int(binary.LittleEndian.Uint32(data)); dim != Dim {
		return nil, fmt.Errorf("risk model: %d weights, this build uses %d", dim, Dim)
	}
	m := &Model{w: make([]float32, Dim)}
	for i, p := range []*float64{&m.a, &m.b, &m.threshold} {
		*p = math.Float64frombits(binary.LittleEndian.Uint64(data[4+8*i:]))
	}
	nz := int(binary.LittleEndian.Uint32(data[28:]))
	data = data[32:]
	if nz > Dim || len(data) < 8*nz+4 {
		return nil, fmt.Errorf("risk model: %d bytes for %d weights", len(data), nz)
	}
	last := -1
	for k := 0; k < nz; k++ {
		i := int(binary.LittleEndian.Uint32(data[8*k:]))
		if i <= last || i >= Dim {
			return nil, fmt.Errorf("risk model: weight index %d out of order or range", i)
		}
		last = i
		m.w[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[8*k+4:]))
	}
	data = data[8*nz:]
	np := int(binary.LittleEndian.Uint32(data))
	data = data[4:]
	if np > PrevDim || len(data) != 5*np {
		return nil, fmt.Errorf("risk model: %d bytes for %d prevalence counts, want %d", len(data), np, 5*np)
	}
	m.prev = make([]uint8, PrevDim)
	last = -1
	for k := 0; k < np; k++ {
		i := int(binary.LittleEndian.Uint32(data[5*k:]))
		if i <= last || i >= PrevDim {
			return nil, fmt.Errorf("risk model: prevalence key %d out of order or range", i)
		}
		last = i
		m.prev[i] = data[5*k+4]
	}
	return m, nil
}
