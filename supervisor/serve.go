package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/profiles"
)

// ServeOptions configure Serve.
type ServeOptions struct {
	Mode   profiles.Mode // the mode the filter was compiled in (audit: record, never block)
	Logger *slog.Logger  // nil: discard
	Events io.Writer     // JSON-lines event log; nil: none. Serve's writes are whole lines.
}

// ErrServeUnsupported is returned by Serve for a profile whose decisions
// need what a listener handed over by another program cannot give.
var ErrServeUnsupported = errors.New("profile not supported on a foreign listener")

// Serve answers the notifications of listener — a seccomp listener created
// by another program, such as runc or crun under a profile exported with
// `archangel profile export --format oci --listener-path` and handed to
// `archangel agent` — with profile p, until no task is left on its filter
// or ctx ends. It takes ownership of listener and returns the run's
// figures.
//
// The tasks behind such a listener live in their own mount namespace (a
// container's root), which the path, network and exec rules and the
// emulated open do not resolve in yet: a path allowed by a rule would be
// opened on the host. So Serve refuses profiles with [files], [network]
// or [exec] rules, a model or patterns (ErrServeUnsupported); what it
// decides are the profile's syscall rules, the [supervisor] default and
// the cross-process rule for ptrace and process_vm_*.
func Serve(ctx context.Context, listener int, p *profiles.Profile, opt ServeOptions) (*Stats, error) {
	if err := CheckServe(p); err != nil {
		unix.Close(listener)
		return nil, err
	}
	logger := opt.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sup, err := newSupervisor(p, nil, opt.Mode, logger, opt.Events, nil)
	if err != nil {
		unix.Close(listener)
		return nil, err
	}
	if err := sup.attach(listener); err != nil {
		unix.Close(listener)
		return nil, err
	}
	sup.start()
	select {
	case <-sup.done:
	case <-ctx.Done():
	}
	sup.stop()
	return sup.stats, nil
}

// CheckServe reports whether Serve can supervise with p: nil, or an error
// wrapping ErrServeUnsupported that says why not.
func CheckServe(p *profiles.Profile) error {
	if why := serveUnsupported(p); why != "" {
		return fmt.Errorf("profile %q on a container's listener: %w: %s; use a profile that decides with syscall rules and [supervisor] default only", p.Name, ErrServeUnsupported, why)
	}
	return nil
}

func serveUnsupported(p *profiles.Profile) string {
	switch {
	case len(p.Files.Read)+len(p.Files.Write)+len(p.Files.Exec)+len(p.Files.Deny) > 0:
		return "[files] rules need paths resolved in the container's mount namespace"
	case len(p.Network.Connect)+len(p.Network.Bind)+len(p.Network.Deny) > 0:
		return "[network] rules take the target's socket, which is in the container's network namespace"
	case len(p.Exec.Rules) > 0:
		return "[exec] rules need paths resolved in the container's mount namespace"
	case len(p.Learned) > 0:
		return "learned path and address verdicts need the container's mount namespace"
	case analysisConfigured(p):
		return "the model tier would have allowed calls carried out in archangel's namespaces"
	case p.Supervisor.Patterns:
		return "patterns watch paths in the container's mount namespace"
	}
	return ""
}
