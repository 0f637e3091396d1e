// Command tunmux loads eBPF tunnel dataplanes into the kernel, pins them
// under a bpffs root and manages their entries with short-lived
// subcommands; all state lives in bpffs between invocations.
//
// Exit codes: 0 ok, 1 operation failed, 2 invalid input (nothing changed),
// 3 not found. Run 'tunmux --help' for the commands.
package main

import "os"

// version, commit and commitTime (the commit's time, in Unix seconds) are
// set at build time (-ldflags "-X main.version=... -X main.commit=...
// -X main.commitTime=..."); without them, commit and its time come from
// Go's build info when it has them.
var (
	version    = "dev"
	commit     = ""
	commitTime = ""
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
