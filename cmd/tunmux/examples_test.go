package main

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every command's Example is checked as the shell would run it, without
// running anything:
//   - lines ending in a backslash continue on the next line;
//   - a line is split into words as sh does for literal text: single and
//     double quotes, backslash escapes, '#' comments; '$(...)' and
//     backquotes are refused (an example is literal);
//   - a line may be a pipeline or a list ('|', '||', '&&', ';', '&'): each
//     of its commands whose first word is tunmux is checked, the others
//     (ip, printf, tshark) are not; redirections ('>', '>>', '<', '2>&1')
//     and their targets are dropped;
//   - a tunmux command line is resolved as run resolves it (the tree built
//     for its arguments, cobra's Find), and its flags, argument count,
//     required flags and flag groups are validated.
// cobra's own help and completion commands are left out: cobra writes them
// (their help shows how to install each shell's script).

// commandsOf walks the tree below c (c included), skipping hidden commands.
func commandsOf(c *cobra.Command) []*cobra.Command {
	if c.Hidden {
		return nil
	}
	list := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		list = append(list, commandsOf(sub)...)
	}
	return list
}

func TestEveryCommandHasAnExample(t *testing.T) {
	commands := commandsOf((&app{}).rootCommand(nil))
	if len(commands) < 50 {
		t.Fatalf("walked %d commands; the tree has more", len(commands))
	}
	for _, c := range commands {
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s has no Example", c.CommandPath())
			continue
		}
		for _, line := range strings.Split(c.Example, "\n") {
			if !strings.HasPrefix(line, "  ") {
				t.Errorf("%s: example line %q is not indented by two spaces, as cobra's help expects", c.CommandPath(), line)
			}
		}
	}
}

func TestExamplesParse(t *testing.T) {
	checked := 0
	for _, c := range commandsOf((&app{}).rootCommand(nil)) {
		invocations, err := exampleInvocations(c.Example)
		if err != nil {
			t.Errorf("%s: %v", c.CommandPath(), err)
			continue
		}
		own := false
		for _, args := range invocations {
			found, err := resolveExample(args)
			if err != nil {
				t.Errorf("%s: example 'tunmux %s': %v", c.CommandPath(), strings.Join(args, " "), err)
				continue
			}
			checked++
			// The command itself, or for a group one of its commands; an
			// example may show a step before or after it (load, attach).
			if found == c.CommandPath() || strings.HasPrefix(found, c.CommandPath()+" ") {
				own = true
			}
		}
		if !own {
			t.Errorf("%s: no example runs %s (examples: %q)", c.CommandPath(), c.CommandPath(), c.Example)
		}
	}
	if checked < 100 {
		t.Errorf("checked %d example command lines; there are more", checked)
	}
}

// resolveExample resolves a tunmux command line (without "tunmux") on a
// fresh tree, as run would build it, and validates it without running it:
// it returns the path of the command found.
func resolveExample(args []string) (string, error) {
	root := (&app{out: io.Discard, errw: io.Discard}).rootCommand(args)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd(args...)
	cmd, rest, err := root.Find(args)
	if err != nil {
		return "", fmt.Errorf("find: %w", err)
	}
	if cmd.HasAvailableSubCommands() {
		return "", fmt.Errorf("%s needs a subcommand", cmd.CommandPath())
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return "", fmt.Errorf("%s: flags: %w", cmd.CommandPath(), err)
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return "", err // wrapArgs names the command and its usage
	}
	if err := cmd.ValidateRequiredFlags(); err != nil {
		return "", fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	if err := cmd.ValidateFlagGroups(); err != nil {
		return "", fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	return cmd.CommandPath(), nil
}

// exampleInvocations returns the arguments of each tunmux command in an
// Example, without "tunmux" (see the rules at the top of this file).
func exampleInvocations(example string) ([][]string, error) {
	var invocations [][]string
	for _, line := range strings.Split(strings.ReplaceAll(example, "\\\n", " "), "\n") {
		commands, err := shellCommands(line)
		if err != nil {
			return nil, fmt.Errorf("example line %q: %w", strings.TrimSpace(line), err)
		}
		for _, words := range commands {
			if words[0] == "tunmux" {
				invocations = append(invocations, words[1:])
			}
		}
	}
	return invocations, nil
}

// shellCommands splits one shell line into the words of each of its simple
// commands, dropping comments, operators and redirections.
func shellCommands(line string) ([][]string, error) {
	var (
		commands [][]string
		words    []string
		word     strings.Builder
		inWord   bool // word holds a word (perhaps empty: '')
		redirect bool // the next word is a redirection's target
	)
	endWord := func() {
		if inWord {
			if !redirect {
				words = append(words, word.String())
			}
			redirect = false
		}
		word.Reset()
		inWord = false
	}
	endCommand := func() {
		endWord()
		if len(words) > 0 {
			commands = append(commands, words)
		}
		words = nil
	}
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == ' ' || ch == '\t':
			endWord()
		case ch == '#' && !inWord:
			i = len(line)
		case ch == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated single quote")
			}
			word.WriteString(line[i+1 : i+1+end])
			inWord = true
			i += 1 + end
		case ch == '"':
			inWord = true
			for i++; ; i++ {
				if i >= len(line) {
					return nil, errors.New("unterminated double quote")
				}
				if line[i] == '"' {
					break
				}
				if line[i] == '$' || line[i] == '`' {
					return nil, errors.New("an expansion: examples are literal")
				}
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					i++
				}
				word.WriteByte(line[i])
			}
		case ch == '\\':
			if i+1 >= len(line) {
				return nil, errors.New("a backslash ends the example")
			}
			i++
			word.WriteByte(line[i])
			inWord = true
		case ch == '`' || (ch == '$' && i+1 < len(line) && line[i+1] == '('):
			return nil, errors.New("a command substitution: examples are literal")
		case ch == '|' || ch == '&' || ch == ';':
			endCommand()
			if i+1 < len(line) && line[i+1] == ch && ch != ';' {
				i++ // || and &&
			}
		case ch == '>' || ch == '<':
			if inWord && strings.Trim(word.String(), "0123456789") == "" {
				word.Reset() // the descriptor of 2>: not a word
				inWord = false
			}
			endWord()
			if i+1 < len(line) && (line[i+1] == '>' || line[i+1] == '&') {
				i++
			}
			redirect = true
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	if redirect && !inWord {
		return nil, errors.New("a redirection without a target")
	}
	endCommand()
	return commands, nil
}

func TestExampleShellSplitting(t *testing.T) {
	for _, c := range []struct {
		line string
		want [][]string
	}{
		{"  tunmux load encap", [][]string{{"tunmux", "load", "encap"}}},
		{"tunmux attach encap veth-wl   # a comment", [][]string{{"tunmux", "attach", "encap", "veth-wl"}}},
		{"# only a comment", nil},
		{"", nil},
		{`tunmux route dev create rt0 --kernel-route "10.200.0.0/16 src 10.100.0.1"`,
			[][]string{{"tunmux", "route", "dev", "create", "rt0", "--kernel-route", "10.200.0.0/16 src 10.100.0.1"}}},
		{`printf 'load encap\ntunnel list\n' | tunmux batch -f -`,
			[][]string{{"printf", `load encap\ntunnel list\n`}, {"tunmux", "batch", "-f", "-"}}},
		{"tunmux export > state.yaml", [][]string{{"tunmux", "export"}}},
		{"tunmux capture wl0 -w - 2>&1 | tshark -r - -V", [][]string{{"tunmux", "capture", "wl0", "-w", "-"}, {"tshark", "-r", "-", "-V"}}},
		{`tunmux status && tunmux stats; echo "a \"b\"" it\'s ''`,
			[][]string{{"tunmux", "status"}, {"tunmux", "stats"}, {"echo", `a "b"`, "it's", ""}}},
		{"tunmux a#b c", [][]string{{"tunmux", "a#b", "c"}}},
	} {
		got, err := shellCommands(c.line)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("shellCommands(%q) = %q, %v; want %q", c.line, got, err, c.want)
		}
	}
	for _, bad := range []string{`tunmux "open`, "tunmux 'open", "tunmux $(echo load)", "tunmux `x`", `tunmux "$X"`, "tunmux export >", `tunmux \`} {
		if got, err := shellCommands(bad); err == nil {
			t.Errorf("shellCommands(%q) = %q, want an error", bad, got)
		}
	}
	got, err := exampleInvocations("  # two lines\n  tunmux tunnel add --inner-src 10.0.0.1 \\\n      --inner-dst 10.0.0.2\n  ip link\n")
	if want := [][]string{{"tunnel", "add", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2"}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("exampleInvocations: %q, %v; want %q", got, err, want)
	}
}

// The checks catch what they are for: a wrong command, flag, value count
// or argument count, or a group without its subcommand, is an error, and an example of another command does not
// count as the command's own.
func TestExampleCheckCatchesMistakes(t *testing.T) {
	for _, args := range [][]string{
		{"tunel", "list"},
		{"tunnel", "ad"},
		{"tunnel", "list", "--no-such-flag"},
		{"tunnel", "add", "--vni"},
		{"attach", "encap"},
		{"detach", "encap", "eth0", "eth1"},
		{"mux"},
	} {
		if found, err := resolveExample(args); err == nil {
			t.Errorf("%q resolved to %s without an error", args, found)
		}
	}
	if found, err := resolveExample([]string{"--netns", "lab", "tunnel", "add", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2"}); err != nil || found != "tunmux tunnel add" {
		t.Errorf("tunnel add after a global flag: %s, %v", found, err)
	}
}
