package testnet

import (
	"os"
	"path/filepath"
	"testing"
)

// Restore runs the export contract on one node (args are its global flags,
// --bpffs and --netns): the state is exported to a file (export -f),
// 'unload --all' removes every pin (the root must be gone), between runs
// what a reboot would do, if anything (nil: nothing), then the file is
// applied and exported again, which must print the same file. It returns
// the exported file's content.
func Restore(t testing.TB, bin string, args []string, between func()) string {
	t.Helper()
	root := ""
	for i, a := range args {
		if a == "--bpffs" && i+1 < len(args) {
			root = args[i+1]
		}
	}
	file := filepath.Join(t.TempDir(), "state.yaml")
	MustTunmux(t, bin, append(args, "export", "-f", file)...)
	before, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	MustTunmux(t, bin, append(args, "unload", "--all")...)
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("unload --all left %s (%v)", root, err)
	}
	if between != nil {
		between()
	}
	MustTunmux(t, bin, append(args, "apply", "-f", file)...)
	after := MustTunmux(t, bin, append(args, "export")...).Stdout
	if after != string(before) {
		t.Fatalf("export after unload --all and apply differs from the one before:\n--- before\n%s\n--- after\n%s", before, after)
	}
	return after
}
