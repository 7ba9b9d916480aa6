package profiles_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/archangel-sandbox/archangel/filter"
	"github.com/archangel-sandbox/archangel/profiles"
)

const dockerDefault = "../../shared/data/oci/docker-default.json"

// dockerJSON is the moby profile format, decoded independently of the
// importer's types.
type dockerJSON struct {
	DefaultAction   string `json:"defaultAction"`
	DefaultErrnoRet *int   `json:"defaultErrnoRet"`
	Syscalls        []struct {
		Names    []string `json:"names"`
		Action   string   `json:"action"`
		ErrnoRet *int     `json:"errnoRet"`
		Args     []struct {
			Index    int    `json:"index"`
			Value    uint64 `json:"value"`
			ValueTwo uint64 `json:"valueTwo"`
			Op       string `json:"op"`
		} `json:"args"`
		Includes struct {
			Caps      []string `json:"caps"`
			Arches    []string `json:"arches"`
			MinKernel string   `json:"minKernel"`
		} `json:"includes"`
		Excludes struct {
			Caps      []string `json:"caps"`
			Arches    []string `json:"arches"`
			MinKernel string   `json:"minKernel"`
		} `json:"excludes"`
	} `json:"syscalls"`
}

// dockerVerdict is "allow" or "errno N".
type dockerRule struct {
	idx     int
	verdict string
	args    []func(args [6]uint64) bool
	bounds  map[int][]uint64 // arg index -> boundary values
}

// x86-64 system calls archangel's table may not know, by number, so that
// the reference evaluator sees what Docker allows there (Linux
// arch/x86/entry/syscalls/syscall_64.tbl).
var extraX8664 = map[int]string{335: "uretprobe"}

// Stricter-only deviations of the imported profile from Docker's, each
// with its reason: nr -> reason. The imported profile may deny or kill
// where Docker allows, never the reverse.
var dockerDeviations = map[int]string{}

func kernelGE(have, want string) bool {
	h := strings.SplitN(have, ".", 3)
	w := strings.SplitN(want, ".", 3)
	hM, _ := strconv.Atoi(h[0])
	hm, _ := strconv.Atoi(h[1])
	wM, _ := strconv.Atoi(w[0])
	wm, _ := strconv.Atoi(w[1])
	return hM > wM || hM == wM && hm >= wm
}

// dockerEffective applies moby's includes/excludes (moby
// profiles/seccomp/seccomp_linux.go) for amd64, caps and kernel, and
// returns each name's rules.
func dockerEffective(t *testing.T, d *dockerJSON, caps []string, kernel string) map[string][]dockerRule {
	t.Helper()
	out := map[string][]dockerRule{}
rules:
	for i, s := range d.Syscalls {
		if slices.Contains(s.Excludes.Arches, "amd64") {
			continue
		}
		for _, c := range s.Excludes.Caps {
			if slices.Contains(caps, c) {
				continue rules
			}
		}
		if s.Excludes.MinKernel != "" && kernelGE(kernel, s.Excludes.MinKernel) {
			continue
		}
		if len(s.Includes.Arches) > 0 && !slices.Contains(s.Includes.Arches, "amd64") {
			continue
		}
		for _, c := range s.Includes.Caps {
			if !slices.Contains(caps, c) {
				continue rules
			}
		}
		if s.Includes.MinKernel != "" && !kernelGE(kernel, s.Includes.MinKernel) {
			continue
		}
		r := dockerRule{idx: i, bounds: map[int][]uint64{}}
		switch s.Action {
		case "SCMP_ACT_ALLOW":
			r.verdict = "allow"
		case "SCMP_ACT_ERRNO":
			e := 1
			if s.ErrnoRet != nil {
				e = *s.ErrnoRet
			}
			r.verdict = "errno " + strconv.Itoa(e)
		default:
			t.Fatalf("syscalls[%d]: action %s: extend the reference evaluator", i, s.Action)
		}
		for _, a := range s.Args {
			a := a
			var f func(v uint64) bool
			bs := []uint64{0, math.MaxUint64, a.Value - 1, a.Value, a.Value + 1, a.ValueTwo}
			switch a.Op {
			case "SCMP_CMP_EQ":
				f = func(v uint64) bool { return v == a.Value }
			case "SCMP_CMP_NE":
				f = func(v uint64) bool { return v != a.Value }
			case "SCMP_CMP_LT":
				f = func(v uint64) bool { return v < a.Value }
			case "SCMP_CMP_LE":
				f = func(v uint64) bool { return v <= a.Value }
			case "SCMP_CMP_GT":
				f = func(v uint64) bool { return v > a.Value }
			case "SCMP_CMP_GE":
				f = func(v uint64) bool { return v >= a.Value }
			case "SCMP_CMP_MASKED_EQ":
				// libseccomp: (arg & datum_a) == datum_b; OCI value is
				// datum_a (the mask), valueTwo datum_b.
				f = func(v uint64) bool { return v&a.Value == a.ValueTwo }
				for bit := range 64 {
					if a.Value&(1<<bit) != 0 {
						bs = append(bs, 1<<bit, a.ValueTwo|1<<bit)
					}
				}
				bs = append(bs, ^a.Value, a.Value, ^uint64(0)&^a.Value|a.ValueTwo)
			default:
				t.Fatalf("syscalls[%d]: op %s: extend the reference evaluator", i, a.Op)
			}
			idx := a.Index
			r.args = append(r.args, func(args [6]uint64) bool { return f(args[idx]) })
			r.bounds[idx] = append(r.bounds[idx], bs...)
		}
		for _, n := range s.Names {
			out[n] = append(out[n], r)
		}
	}
	return out
}

// dockerEval decides one call: the matching rules (unconditional, or all
// comparisons hold) must agree; none matching gives the default.
func dockerEval(t *testing.T, d *dockerJSON, eff map[string][]dockerRule, name string, args [6]uint64) string {
	def := "allow"
	if d.DefaultAction == "SCMP_ACT_ERRNO" {
		e := 1
		if d.DefaultErrnoRet != nil {
			e = *d.DefaultErrnoRet
		}
		def = "errno " + strconv.Itoa(e)
	}
	verdict := ""
	for _, r := range eff[name] {
		ok := true
		for _, f := range r.args {
			ok = ok && f(args)
		}
		if !ok {
			continue
		}
		if verdict != "" && verdict != r.verdict {
			t.Fatalf("%s %v: Docker's rules disagree (%s, %s): the reference evaluator does not model libseccomp's precedence", name, args, verdict, r.verdict)
		}
		verdict = r.verdict
	}
	if verdict == "" {
		return def
	}
	return verdict
}

func archangelVerdict(v filter.Verdict) string {
	switch v.Action {
	case profiles.ActionAllow:
		return "allow"
	case profiles.ActionErrno:
		return "errno " + strconv.Itoa(int(v.Errno))
	}
	return v.Action.String()
}

// TestImportDockerDefault is the acceptance test: the imported
// docker-default profile allows and denies exactly what Docker's does on
// amd64 with Docker's default capabilities, at every system call number
// and at the boundary values of every argument condition.
func TestImportDockerDefault(t *testing.T) {
	data, err := os.ReadFile(dockerDefault)
	if os.IsNotExist(err) {
		t.Skipf("needs %s (the shared data checkout beside this one): %v", dockerDefault, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		caps   []string
		kernel string
	}{
		{"default caps", nil, ""},
		{"default caps, kernel 4.4", nil, "4.4"},
		{"CAP_SYS_ADMIN and CAP_SYS_PTRACE", append(slices.Clone(profiles.DockerDefaultCaps), "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"), ""},
		{"no caps", []string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im, err := profiles.ImportOCI(data, profiles.ImportOptions{File: "docker-default.json", Caps: tc.caps, Kernel: tc.kernel})
			if err != nil {
				t.Fatal(err)
			}
			if len(im.Stricter) > 0 {
				t.Errorf("import reports stricter-than-Docker rules: %q", im.Stricter)
			}
			var d dockerJSON
			if err := json.Unmarshal(data, &d); err != nil {
				t.Fatal(err)
			}
			caps := tc.caps
			if caps == nil {
				caps = profiles.DockerDefaultCaps
			}
			kernel := tc.kernel
			if kernel == "" {
				kernel = profiles.DefaultImportKernel
			}
			eff := dockerEffective(t, &d, caps, kernel)
			ev := filter.NewEvaluator(im.Profile)
			opts := filter.Options{Arch: filter.ArchAMD64}
			calls, conds, deviations := 0, 0, 0
			for nr := 0; nr <= 470; nr++ {
				name, ok := profiles.SyscallName(nr)
				if !ok {
					name = extraX8664[nr]
				}
				cases := [][6]uint64{{}}
				for _, r := range eff[name] {
					for idx, bs := range r.bounds {
						for _, b := range bs {
							var a [6]uint64
							a[idx] = b
							cases = append(cases, a)
							for j := range a {
								if j != idx {
									a[j] = math.MaxUint64
								}
							}
							cases = append(cases, a)
						}
					}
				}
				calls++
				conds += len(cases) - 1
				for _, args := range cases {
					want := "errno 1"
					if name != "" {
						want = dockerEval(t, &d, eff, name, args)
					}
					got := archangelVerdict(ev.Eval(opts, filter.Data{Nr: int32(nr), Arch: filter.AuditArchX8664, Args: args}))
					if got == want {
						continue
					}
					if reason, ok := dockerDeviations[nr]; ok && want == "allow" && got != "allow" {
						deviations++
						continue
					} else if ok {
						t.Errorf("nr %d %s: documented deviation (%s) but archangel %s, Docker %s", nr, name, reason, got, want)
					}
					t.Errorf("nr %d %s args %#x: archangel %s, Docker %s", nr, name, args, got, want)
				}
			}
			t.Logf("compared %d syscall numbers and %d argument cases; %d stricter deviations (documented: %v)", calls, conds, deviations, keys(dockerDeviations))
		})
	}
}

func keys(m map[int]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%d %s", k, strings.SplitN(v, " ", 2)[0]))
	}
	slices.Sort(out)
	return out
}
