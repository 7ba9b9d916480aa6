// Command archangel runs a command under a seccomp-BPF program generated
// from a profile, with a user-space supervisor deciding what the kernel
// hands it. See the README for usage.
package main

import (
	"context"
	"os"

	"github.com/archangel-sandbox/archangel/supervisor"
)

func main() {
	supervisor.RunShimIfRequested() // the re-executed launcher shim never returns
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
