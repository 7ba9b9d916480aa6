package profiles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/BurntSushi/toml"
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

type configFile struct {
	Analyzer struct {
		Budget    string `toml:"budget"`
		OnTimeout string `toml:"on_timeout"`
	} `toml:"analyzer"`
}

// LoadConfig reads the configuration at path. A missing file at the
// default path yields an empty Config; at any other path it is an error.
// Unknown keys are errors with their position, like in profiles.
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
	var f configFile
	md, err := toml.Decode(string(b), &f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d:%d: %s", path, pe.Position.Line, pe.Position.Col, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown key %q (known: analyzer.budget, analyzer.on_timeout)", path, und[0].String())
	}
	c := &Config{Path: path}
	if s := f.Analyzer.Budget; s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: analyzer.budget: bad duration %q (write e.g. \"100us\" or \"2ms\")", path, s)
		}
		c.Budget = d
	}
	switch f.Analyzer.OnTimeout {
	case "":
	case "allow":
		c.OnTimeout = ActionAllow
	case "deny", "errno":
		c.OnTimeout = ActionErrno
	case "kill":
		c.OnTimeout = ActionKill
	default:
		return nil, fmt.Errorf("%s: analyzer.on_timeout: unknown verdict %q (want allow, deny or kill)", path, f.Analyzer.OnTimeout)
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
