package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/dataplane"
)

// versionInfo is what tunmux version prints.
type versionInfo struct {
	Version   string            `json:"version"`
	Commit    string            `json:"commit"`
	Modified  bool              `json:"modified"`
	GoVersion string            `json:"go_version"`
	Objects   map[string]string `json:"bpf_objects"` // dataplane (and dataplane/observed) -> sha256 of the object
}

// readVersion gathers the version of this binary: the version stamped at
// build time, the commit and Go version Go records, and a hash of every
// embedded BPF object.
func readVersion() versionInfo {
	v := versionInfo{Version: version, Commit: commit, GoVersion: runtime.Version(), Objects: map[string]string{}}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	for _, dp := range dataplane.All() {
		plain, observed := dp.Objects()
		v.Objects[dp.Name] = shortHash(plain)
		v.Objects[dp.Name+"/observed"] = shortHash(observed)
	}
	return v
}

func shortHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Text is the version as people read it.
func (v versionInfo) Text() string {
	var b strings.Builder
	commit := v.Commit
	if commit == "" {
		commit = "unknown"
	}
	if v.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(&b, "tunmux %s\ncommit %s\n%s\nBPF objects (sha256, first 16 hex digits):\n", v.Version, commit, v.GoVersion)
	for _, dp := range dataplane.All() {
		fmt.Fprintf(&b, "  %-9s %s  observed %s\n", dp.Name, v.Objects[dp.Name], v.Objects[dp.Name+"/observed"])
	}
	return b.String()
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and the hashes of the BPF objects",
		Long: `Print this binary's version (as stamped by 'make build'), the commit and Go
version it was built from, and a hash of each embedded BPF object: two binaries
with the same hashes load the same programs. --version prints the same.`,
		Example: "  tunmux version\n  tunmux version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.printer.Print(readVersion())
		},
	}
}
