package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/profiles"
	"github.com/archangel-sandbox/archangel/supervisor"
)

// agentCmd is `archangel agent`: the OCI seccomp agent. runc and crun,
// given a profile exported with `archangel profile export --format oci
// --listener-path SOCKET`, connect to SOCKET once a container's filter is
// loaded and send its seccomp listener (SCM_RIGHTS) with the container's
// state as JSON (the runtime spec's ContainerProcessState: "fds" names
// the descriptors, "seccompFd" among them; "metadata" is the profile's
// listenerMetadata). The agent supervises each container with the
// profile the metadata names ("profile=NAME"), or --profile, until the
// container's last task is gone.
type agentCmd struct {
	Socket    string `required:"" help:"Unix socket the runtime connects to (the profile's listenerPath)." placeholder:"PATH"`
	Profile   string `short:"p" required:"" help:"Profile for containers whose listenerMetadata names none (it must decide with syscall rules and [supervisor] default only: container paths are not resolved yet)."`
	EventsDir string `help:"Write each container's JSON-lines event log to DIR/ID.jsonl." type:"path" placeholder:"DIR"`
}

// containerState is the part of the runtime spec's ContainerProcessState
// the agent reads.
type containerState struct {
	OCIVersion string   `json:"ociVersion"`
	FDs        []string `json:"fds"`
	PID        int      `json:"pid"`
	Metadata   string   `json:"metadata"`
	State      struct {
		ID     string `json:"id"`
		Bundle string `json:"bundle"`
	} `json:"state"`
}

// maxStateMessage bounds the runtime's message (state JSON with annotations).
const maxStateMessage = 1 << 20

var containerIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func (a *agentCmd) Run(g *Globals, logger *slog.Logger) error {
	def, err := profiles.Load(a.Profile)
	if err == nil {
		err = supervisor.CheckServe(def)
	}
	if err != nil {
		return &exitStatus{code: supervisor.ExitFailure, err: err}
	}
	_ = os.Remove(a.Socket)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: a.Socket, Net: "unix"})
	if err != nil {
		return &exitStatus{code: supervisor.ExitFailure, err: fmt.Errorf("agent: %w", err)}
	}
	// The runtime runs as root; nobody else may hand the agent listeners.
	if err := os.Chmod(a.Socket, 0o600); err != nil {
		ln.Close()
		return &exitStatus{code: supervisor.ExitFailure, err: fmt.Errorf("agent: %w", err)}
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	fmt.Fprintf(g.stderr, "archangel agent: listening on %s (default profile %s)\n", a.Socket, def.Name)
	var wg sync.WaitGroup
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			logger.Error("agent: accept", "err", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.container(ctx, g, logger, conn, def)
		}()
	}
	wg.Wait()
	return nil
}

// container receives one container's listener and supervises it.
func (a *agentCmd) container(ctx context.Context, g *Globals, logger *slog.Logger, conn *net.UnixConn, def *profiles.Profile) {
	defer conn.Close()
	st, listener, err := receiveListener(conn)
	if err != nil {
		logger.Error("agent: receive container listener", "err", err)
		fmt.Fprintf(g.stderr, "archangel agent: %v\n", err)
		return
	}
	p := def
	if name, ok := strings.CutPrefix(st.Metadata, "profile="); ok {
		if p, err = profiles.Load(name); err == nil {
			err = supervisor.CheckServe(p)
		}
		if err != nil {
			// Fail closed: the listener closes, and every notified call of
			// the container fails (ENOSYS).
			unix.Close(listener)
			fmt.Fprintf(g.stderr, "archangel agent: container %s: %v\n", st.State.ID, err)
			return
		}
	}
	opt := supervisor.ServeOptions{Mode: p.Mode, Logger: logger}
	if a.EventsDir != "" && containerIDRe.MatchString(st.State.ID) {
		f, err := os.OpenFile(filepath.Join(a.EventsDir, st.State.ID+".jsonl"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			unix.Close(listener)
			fmt.Fprintf(g.stderr, "archangel agent: container %s: events: %v\n", st.State.ID, err)
			return
		}
		defer f.Close()
		opt.Events = f
	}
	fmt.Fprintf(g.stderr, "archangel agent: container %s (pid %d): supervising with profile %s\n", st.State.ID, st.PID, p.Name)
	stats, err := supervisor.Serve(ctx, listener, p, opt)
	if err != nil {
		fmt.Fprintf(g.stderr, "archangel agent: container %s: %v\n", st.State.ID, err)
		return
	}
	fmt.Fprintf(g.stderr, "archangel agent: container %s ended\n", st.State.ID)
	stats.Snapshot().WriteSummary(g.stderr)
}

// receiveListener reads the runtime's one message: the state JSON, with
// the descriptors it names in SCM_RIGHTS. Every descriptor but the
// listener is closed.
func receiveListener(conn *net.UnixConn) (*containerState, int, error) {
	buf := make([]byte, maxStateMessage)
	oob := make([]byte, unix.CmsgSpace(4*8))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, -1, err
	}
	var fds []int
	if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for i := range cmsgs {
			if got, err := unix.ParseUnixRights(&cmsgs[i]); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	closeAllBut := func(keep int) {
		for _, fd := range fds {
			if fd != keep {
				unix.Close(fd)
			}
		}
	}
	var st containerState
	if err := json.Unmarshal(buf[:n], &st); err != nil {
		closeAllBut(-1)
		return nil, -1, fmt.Errorf("container state: %w", err)
	}
	idx := -1
	for i, name := range st.FDs {
		if name == "seccompFd" {
			idx = i
		}
	}
	if idx < 0 || idx >= len(fds) {
		closeAllBut(-1)
		return nil, -1, errors.New("container state names no seccompFd among the descriptors sent")
	}
	closeAllBut(fds[idx])
	unix.CloseOnExec(fds[idx])
	return &st, fds[idx], nil
}
