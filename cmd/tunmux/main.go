// Command tunmux loads eBPF tunnel dataplanes into the kernel, pins them
// under a bpffs root and manages their entries with short-lived
// subcommands; all state lives in bpffs between invocations.
//
// Exit codes: 0 ok, 1 operation failed, 2 invalid input (nothing changed),
// 3 not found. Run 'tunmux --help' for the commands.
package main

import "os"

// version and commit are set at build time (-ldflags "-X main.version=...
// -X main.commit=..."); without them, commit comes from Go's build info.
var (
	version = "dev"
	commit  = ""
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
