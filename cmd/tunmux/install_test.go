package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tunmux/tunmux/internal/testnet"
)

// make install DESTDIR=... PREFIX=/usr installs the binary, bash, zsh and
// fish completions and a man page for every command (cobra's completion
// commands included), each non-empty, and nothing else.
func TestInstallPutsEveryFileInPlace(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is needed (scripts/deps.sh installs it): %v", err)
	}
	dest := t.TempDir()
	build := filepath.Join(t.TempDir(), "build") // not the repository's bin/
	cmd := exec.Command("make", "--no-print-directory", "-C", testnet.TopDir(), "install",
		"DESTDIR="+dest, "PREFIX=/usr", "BUILDDIR="+build)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}

	want := map[string]string{ // path under DESTDIR: a line it must hold
		"usr/bin/tunmux": "",
		"usr/share/bash-completion/completions/tunmux":    "__start_tunmux",
		"usr/share/zsh/site-functions/_tunmux":            "#compdef tunmux",
		"usr/share/fish/vendor_completions.d/tunmux.fish": "complete -c tunmux",
	}
	root := (&app{}).rootCommand(nil)
	root.InitDefaultCompletionCmd()
	for _, c := range commandsOf(root) {
		name := strings.ReplaceAll(c.CommandPath(), " ", "-")
		page := "usr/share/man/man1/" + name + ".1"
		want[page] = `.TH "` + strings.ToUpper(name) + `" "1"`
		if c.Example != "" {
			want[page] = ".SH EXAMPLE"
		}
	}
	var got []string
	err := filepath.WalkDir(dest, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dest, path)
			got = append(got, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, line := range want {
		b, err := os.ReadFile(filepath.Join(dest, path))
		switch {
		case err != nil:
			t.Errorf("not installed: %v", err)
		case len(b) == 0:
			t.Errorf("%s is empty", path)
		case !strings.Contains(string(b), line):
			t.Errorf("%s lacks %q:\n%.300s", path, line, b)
		}
	}
	for _, path := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("installed, but not expected: %s", path)
		}
	}
	if len(want) < 60 {
		t.Errorf("expected only %d files; the tree has more commands", len(want))
	}
	// A description keeps its layout (man.go's manLayout): a list item on a
	// line of its own, its continuation lines joined to it.
	page, _ := os.ReadFile(filepath.Join(dest, "usr/share/man/man1/tunmux-tunnel.1"))
	if item := ".br\n  encap: frames from inner-src to inner-dst (IP, and ARP or IPv6 neighbour solicitations"; !strings.Contains(string(page), item) {
		t.Errorf("tunmux-tunnel.1 lacks %q:\n%s", item, page)
	}
	out, err := exec.Command(filepath.Join(dest, "usr/bin/tunmux"), "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "tunmux") {
		t.Errorf("the installed tunmux --version: %v\n%s", err, out)
	}
}

// The man page generator (cobra/doc and the markdown and YAML packages it
// brings, whose init costs each start about 1 ms) is linked only into the
// -tags mangen build that make man runs, never into tunmux itself.
func TestManGeneratorStaysOutOfTheBinary(t *testing.T) {
	deps := func(tags string) []string {
		t.Helper()
		cmd := exec.Command("go", "list", "-deps", "-tags", tags, "./cmd/tunmux")
		cmd.Dir = testnet.TopDir()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps -tags %q: %v", tags, err)
		}
		return strings.Fields(string(out))
	}
	const generator = "github.com/spf13/cobra/doc"
	if slices.Contains(deps(""), generator) {
		t.Errorf("tunmux links %s; only the mangen build should", generator)
	}
	if !slices.Contains(deps("mangen"), generator) {
		t.Errorf("the mangen build does not link %s: make man has no generator", generator)
	}
}
