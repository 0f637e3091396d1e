//go:build mangen

// The man page generator: a hidden '__man DIR' command, linked in only by
// 'go build -tags mangen' (make man). cobra/doc brings markdown and YAML
// packages whose init costs each start of tunmux about a millisecond, so
// the binary operators run does not carry it.

package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() { buildCommands = append(buildCommands, (*app).manCommand) }

// manCommand is the hidden __man DIR command make man runs.
func (a *app) manCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "__man DIR",
		Short:  "Write a man page (section 1) for every command into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return nil // no bpffs root, no namespace: this only writes files
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeManPages(args[0])
		},
	}
}

// writeManPages writes tunmux.1 and one page per command (tunmux-tunnel-add.1)
// into dir, from the whole command tree and cobra's completion command. The
// date is SOURCE_DATE_EPOCH's when it is set (reproducible builds).
func writeManPages(dir string) error {
	root := (&app{}).rootCommand(nil)
	root.InitDefaultCompletionCmd()
	preserveLines(root)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	header := &doc.GenManHeader{Section: "1", Source: "tunmux " + version, Manual: "tunmux manual"}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return fmt.Errorf("man pages into %s: %w", dir, err)
	}
	return nil
}

// preserveLines keeps the layout of each command's long description,
// written for an 80-column terminal, as far as a man page reflows it: prose
// lines stay one paragraph, but an indented line (a list item, a command
// line) starts a line of its own, with the deeper-indented lines under it
// joined to it; the markdown renderer would otherwise run them together.
// It also drops cobra's "Auto generated" footer, which carries the date.
func preserveLines(c *cobra.Command) {
	c.DisableAutoGenTag = true
	c.Long = manLayout(c.Long)
	for _, sub := range c.Commands() {
		preserveLines(sub)
	}
}

// manLayout rewrites text for the markdown renderer: a hard break (two
// trailing spaces) before each indented item, and an item's continuation
// lines (indented deeper) joined to it.
func manLayout(text string) string {
	indent := func(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
	var out []string
	item := -1 // indentation of the item the last line belongs to, -1 in prose
	for _, line := range strings.Split(text, "\n") {
		n := indent(line)
		switch {
		case line == "", len(out) == 0, out[len(out)-1] == "":
			// a paragraph's end or start: no break to add
		case n > 0 && item >= 0 && n > item:
			out[len(out)-1] += " " + strings.TrimSpace(line)
			continue
		case n > 0 || item >= 0:
			out[len(out)-1] += "  "
		}
		item = -1
		if n > 0 {
			item = n
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
