package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/dataplane"
)

// versionInfo is what tunmux version prints.
type versionInfo struct {
	Version   string            `json:"version"`
	Commit    string            `json:"commit"`
	Built     time.Time         `json:"built,omitzero"` // the commit's time: orders builds
	Modified  bool              `json:"modified"`
	GoVersion string            `json:"go_version"`
	Objects   map[string]string `json:"bpf_objects"` // dataplane (and dataplane/observed) -> sha256 of the object
}

// buildTime is the time of the commit this binary was built from, which
// orders builds (a load refuses to replace a later build's programs); zero
// when unknown.
func buildTime() time.Time {
	if n, err := strconv.ParseInt(commitTime, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0).UTC()
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t.UTC()
				}
			}
		}
	}
	return time.Time{}
}

// readVersion gathers the version of this binary: the version stamped at
// build time, the commit and Go version Go records, and a hash of every
// embedded BPF object.
func readVersion() versionInfo {
	v := versionInfo{Version: version, Commit: commit, Built: buildTime(), GoVersion: runtime.Version(), Objects: map[string]string{}}
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
	built := "unknown"
	if !v.Built.IsZero() {
		built = v.Built.Format(time.RFC3339)
	}
	fmt.Fprintf(&b, "tunmux %s\ncommit %s, of %s\n%s\nBPF objects (sha256, first 16 hex digits):\n", v.Version, commit, built, v.GoVersion)
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
