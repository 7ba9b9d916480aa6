package profiles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// DefaultConfigPath is the machine-wide configuration archangel reads when
// no --config is given. A missing file is no error.
const DefaultConfigPath = "/etc/archangel/config.toml"

// Config is the machine-wide configuration: defaults an operator sets once
// for every profile. A profile's own setting wins over it.
//
//	[analyzer]
//	budget = "200us"        # time budget of one analysis
//	on_timeout = "deny"     # allow | deny | kill: verdict when the budget runs out
type Config struct {
	Path      string        // the file read; "" when there was none
	Budget    time.Duration // 0: not set
	OnTimeout Action        // ActionUnset: not set
}

// LoadConfig reads the configuration at path. A missing file at the
// default path yields an empty Config; at any other path it is an error.
// Problems are reported like a profile's: every one at once, each with
// file:line:col and a hint.
func LoadConfig(path string) (*Config, error) {
	explicit := path != ""
	if path == "" {
		path = DefaultConfigPath
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var errs errList
	c := &Config{Path: path}
	if m, p := decodeDoc(path, b, &errs); p != nil {
		p.checkKeys(m, "", []string{"analyzer"})
		if t, ok := p.table(m, "", "analyzer"); ok {
			const at = "analyzer"
			p.checkKeys(t, at, []string{"budget", "on_timeout"})
			if it, ok := p.str(t, at, "budget"); ok {
				d, err := time.ParseDuration(it.text)
				if err != nil || d <= 0 {
					p.errs.add(it.pos, "write a positive Go duration such as \"100us\" or \"2ms\"", "analyzer.budget: bad duration %q", it.text)
				} else {
					c.Budget = d
				}
			}
			if it, ok := p.str(t, at, "on_timeout"); ok {
				switch it.text {
				case "allow":
					c.OnTimeout = ActionAllow
				case "deny", "errno":
					c.OnTimeout = ActionErrno
				case "kill":
					c.OnTimeout = ActionKill
				default:
					p.errs.add(it.pos, "the verdict a call gets when no analysis is ready in time", "analyzer.on_timeout: unknown verdict %q (want allow, deny or kill)", it.text)
				}
			}
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// ApplyConfig fills the [analyzer] settings p's files left unset from c.
func (p *Profile) ApplyConfig(c *Config) {
	if c == nil {
		return
	}
	if c.Budget > 0 && !p.Analyzer.BudgetSet {
		p.Analyzer.Budget = c.Budget
	}
	if c.OnTimeout != ActionUnset && !p.Analyzer.OnTimeoutSet {
		p.Analyzer.OnTimeout = c.OnTimeout
	}
}
