package main

import (
	"bytes"
	"testing"
)

func TestCommandWord(t *testing.T) {
	pf := (&app{}).rootCommand(nil).PersistentFlags()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"tunnel", "get"}, "tunnel"},
		{[]string{"--bpffs", "/x", "--netns", "n", "tunnel", "add"}, "tunnel"},
		{[]string{"--bpffs=/x", "-o", "json", "status"}, "status"},
		{[]string{"-o", "json"}, ""},
		{[]string{"--help"}, ""},
		{[]string{"--no-such-flag", "tunnel"}, ""},
		{[]string{"--", "tunnel"}, ""},
	} {
		if got := commandWord(pf, c.args); got != c.want {
			t.Errorf("commandWord(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}

// A command built alone (the tree for its own arguments) behaves as in the
// whole tree: the same help, the same errors.
func TestOneSubtreeIsTheWholeTreesPart(t *testing.T) {
	for _, args := range [][]string{
		{"tunnel", "add", "--help"}, {"status", "--help"}, {"apply", "--help"}, {"route", "--help"},
		{"tunnel", "add", "--vni", "x"}, {"mux", "nope"}, {"--bpffs", "/nonexistent-root", "stats"},
	} {
		var lazyOut, fullOut bytes.Buffer
		lazy := (&app{out: &lazyOut, errw: &lazyOut}).rootCommand(args)
		full := (&app{out: &fullOut, errw: &fullOut}).rootCommand(nil)
		if len(lazy.Commands()) != 1 || len(full.Commands()) < 10 {
			t.Fatalf("%q: %d commands built for it, %d in the whole tree", args, len(lazy.Commands()), len(full.Commands()))
		}
		var errs [2]string
		for i, root := range []*bytes.Buffer{&lazyOut, &fullOut} {
			cmd := lazy
			if i == 1 {
				cmd = full
			}
			cmd.SetArgs(args)
			cmd.SetOut(root)
			cmd.SetErr(root)
			if err := cmd.Execute(); err != nil {
				errs[i] = err.Error()
			}
		}
		if lazyOut.String() != fullOut.String() || errs[0] != errs[1] {
			t.Errorf("%q: built alone:\n%s%s\nin the whole tree:\n%s%s", args, lazyOut.String(), errs[0], fullOut.String(), errs[1])
		}
	}
}
