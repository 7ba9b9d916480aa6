package profiles_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/archangel-sandbox/archangel/profiles"
)

// samePolicies compares what two profiles decide for every system call:
// action, errno and conditional rules (positions and sources differ).
func samePolicies(t *testing.T, a, b *profiles.Profile) {
	t.Helper()
	for _, name := range profiles.SyscallNames() {
		pa, pb := a.Policy(name), b.Policy(name)
		if pa.Action != pb.Action || pa.Errno != pb.Errno {
			t.Errorf("%s: %s %s, after round trip %s %s", name, pa.Action, pa.Errno, pb.Action, pb.Errno)
		}
		if !slices.EqualFunc(pa.Conds, pb.Conds, func(x, y profiles.Rule) bool {
			return x.Action == y.Action && x.Errno == y.Errno && slices.Equal(x.Args, y.Args)
		}) {
			t.Errorf("%s: conditional rules differ:\n%+v\n%+v", name, pa.Conds, pb.Conds)
		}
	}
	if len(a.Policies()) != len(b.Policies()) {
		t.Errorf("Policies: %d, after round trip %d", len(a.Policies()), len(b.Policies()))
	}
}

func TestShowRoundTrip(t *testing.T) {
	for _, name := range profiles.BuiltinNames() {
		t.Run(name, func(t *testing.T) {
			p, err := profiles.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			out, err := p.MarshalTOML()
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), name+"-resolved.toml")
			if err := os.WriteFile(file, out, 0o644); err != nil {
				t.Fatal(err)
			}
			q, err := profiles.Parse(file, out)
			if err != nil {
				t.Fatalf("Parse(show(%s)): %v\n%s", name, err, out)
			}
			samePolicies(t, p, q)
			if q.Name != p.Name || q.Mode != p.Mode || q.IOUring != p.IOUring || q.Default != p.Default || q.DefaultErrno != p.DefaultErrno {
				t.Errorf("[profile] differs: %+v vs %+v", q, p)
			}
			if !slices.Equal(texts(p.Files.Deny), texts(q.Files.Deny)) || q.Supervisor.Default != p.Supervisor.Default ||
				!slices.Equal(q.Supervisor.Advisory, p.Supervisor.Advisory) || q.Analyzer != p.Analyzer {
				t.Errorf("[files]/[supervisor]/[analyzer] differ")
			}
			// Showing the shown profile is a fixed point, but for the
			// comments naming sources.
			out2, err := q.MarshalTOML()
			if err != nil {
				t.Fatal(err)
			}
			r, err := profiles.Parse(file, out2)
			if err != nil {
				t.Fatal(err)
			}
			samePolicies(t, q, r)
		})
	}
}

func texts(ps []profiles.Pattern) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Text)
	}
	return out
}
