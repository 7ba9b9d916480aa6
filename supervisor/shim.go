package supervisor

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/internal/kernel"
)

// ShimArg is the hidden first argument that turns an archangel binary (or a
// test binary that calls RunShimIfRequested first) into the launcher shim.
const ShimArg = "__archangel-shim"

// shimFD is the shim's end of the socketpair (ExtraFiles[0]).
const shimFD = 3

// Messages from the supervisor to the shim.
const (
	msgProgram  = 'P' // 'P', flags (4 bytes LE), handoff (1 byte: 1 = SCM_RIGHTS), program bytes
	msgGo       = 'G' // go-ahead: the supervisor is answering notifications
	msgError    = 'E' // shim → supervisor: text of a failure before loading
	msgReady    = 'R' // shim → supervisor: the shim runs and waits for the program
	msgLandlock = 'A' // 'A', handled (8 bytes LE), then per rule: access (8), path length (2), path
)

// RunShimIfRequested runs the launcher shim and never returns when the
// process was started as one (os.Args[1] == ShimArg). Call it first thing in
// main, and in TestMain of tests that start supervised commands.
func RunShimIfRequested() {
	if len(os.Args) == 3 && os.Args[1] == WatchdogArg {
		os.Exit(watchdogMain(os.Args[2]))
	}
	if len(os.Args) < 3 || os.Args[1] != ShimArg {
		return
	}
	err := shimMain(os.Args[2], os.Args[3:])
	msg := append([]byte{msgError}, err.Error()...)
	_ = unix.Sendmsg(shimFD, msg, nil, nil, 0)
	os.Exit(125)
}

func shimMain(path string, argv []string) error {
	if _, err := unix.Write(shimFD, []byte{msgReady}); err != nil {
		return fmt.Errorf("shim: announce: %w", err)
	}
	buf := make([]byte, 64<<10)
	n, err := unix.Read(shimFD, buf)
	if err != nil {
		return fmt.Errorf("shim: read program: %w", err)
	}
	if n < 6 || buf[0] != msgProgram {
		return fmt.Errorf("shim: malformed program message (%d bytes)", n)
	}
	flags := uint32(buf[1]) | uint32(buf[2])<<8 | uint32(buf[3])<<16 | uint32(buf[4])<<24
	prog := append([]byte(nil), buf[6:n]...)
	landlock := -1
	n, err = unix.Read(shimFD, buf)
	if err != nil || n < 9 || buf[0] != msgLandlock {
		return fmt.Errorf("shim: malformed Landlock message (%d bytes, %v)", n, err)
	}
	if handled, rules, ok := decodeLandlock(buf[1:n]); !ok {
		return fmt.Errorf("shim: malformed Landlock message")
	} else if handled != 0 {
		fd, missing, err := kernel.LandlockRuleset(handled, rules)
		if err != nil {
			return fmt.Errorf("shim: %w", err)
		}
		_ = missing // a missing path grants nothing: stricter, never weaker
		landlock = fd.Int()
	}
	// The socket must not leak into the target.
	if _, err := unix.FcntlInt(shimFD, unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return fmt.Errorf("shim: set close-on-exec: %w", err)
	}
	return kernel.ExecFiltered(kernel.ShimSpec{
		Program:  prog,
		Landlock: landlock,
		Flags:    flags,
		SCM:      buf[5] == 1,
		Sock:     shimFD,
		Path:     path,
		Argv:     argv,
		Env:      os.Environ(),
	})
}

// encodeLandlock serialises a Landlock plan for the shim.
func encodeLandlock(handled uint64, rules []kernel.LandlockRule) []byte {
	b := binary.LittleEndian.AppendUint64([]byte{msgLandlock}, handled)
	for _, r := range rules {
		b = binary.LittleEndian.AppendUint64(b, r.Access)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(r.Path)))
		b = append(b, r.Path...)
	}
	return b
}

func decodeLandlock(b []byte) (uint64, []kernel.LandlockRule, bool) {
	if len(b) < 8 {
		return 0, nil, false
	}
	handled := binary.LittleEndian.Uint64(b)
	b = b[8:]
	var rules []kernel.LandlockRule
	for len(b) > 0 {
		if len(b) < 10 {
			return 0, nil, false
		}
		access := binary.LittleEndian.Uint64(b)
		l := int(binary.LittleEndian.Uint16(b[8:]))
		if len(b) < 10+l {
			return 0, nil, false
		}
		rules = append(rules, kernel.LandlockRule{Path: string(b[10 : 10+l]), Access: access})
		b = b[10+l:]
	}
	return handled, rules, true
}
