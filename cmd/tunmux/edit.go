package main

import (
	"runtime"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// edit runs a command's write through apply, as a one-entry document in
// mode: the same checks, conflicts, warnings, dependency order and batch
// writes as a desired-state file. names are what errors call the fields the
// command takes as arguments. The lock is held from before (a read for the
// output, such as the entry a delete removes) to after (a read of what was
// written); warnings are printed as they come.
func (a *app) edit(dp *dataplane.Dataplane, doc *apply.Document, mode apply.Mode, names map[string]string, before, after func(*maps.Root) error) (apply.Result, error) {
	var res apply.Result
	opts := apply.Options{Netns: a.netns, Mode: mode, Names: names, Version: version, Built: buildTime()}
	if a.batch == nil {
		// The lock is held only to check against the pins and write: the
		// values are checked and the interfaces looked up before it is
		// taken (a bad value exits 2 without waiting for it), and the
		// checks under it answer those lookups from the memo.
		runtime.LockOSThread() // for the memo: see netdev.Memo
		defer runtime.UnlockOSThread()
		defer netdev.Memo()()
		if err := apply.Check(a.root(), "", doc, opts); apply.IsBadFile(err) {
			return res, err
		}
	}
	err := a.mutate(false, dp, func(lock *maps.Lock) error {
		defer dataplane.Reuse(lock.Root())() // from before to after, each map opened once
		if before != nil {
			// What the output needs of the entry as it was; if it cannot be
			// read, the write's own checks say why.
			_ = before(lock.Root())
		}
		var err error
		res, err = apply.Apply(lock.Root(), lock, "", doc, opts)
		a.warn(res.Warnings...)
		if err != nil || after == nil {
			return err
		}
		return after(lock.Root())
	})
	return res, err
}

// read runs fn on a loaded dataplane, opened by open, without the lock.
func read[T interface{ Close() }](a *app, open func(*maps.Root) (T, error), fn func(T) error) error {
	x, err := open(a.root())
	if err != nil {
		return err
	}
	defer x.Close()
	return fn(x)
}

// one makes a one-entry list.
func one[T any](args T) []apply.Entry[T] { return []apply.Entry[T]{{Args: args}} }

// write runs a command's one-entry change, as edit does, then prints what
// view returns.
func (a *app) write(dp *dataplane.Dataplane, doc *apply.Document, mode apply.Mode, names map[string]string, before, after func(*maps.Root) error, view func() any) error {
	if _, err := a.edit(dp, doc, mode, names, before, after); err != nil {
		return err
	}
	return a.printer.Print(view())
}

// listing makes cmd a list command (no arguments): it prints view of the
// entries list reads from the dataplane open opens ([] when there are none).
func listing[T interface{ Close() }, E, V any](a *app, cmd *cobra.Command, open func(*maps.Root) (T, error), list func(T) ([]E, error), view func([]E) V) *cobra.Command {
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(*cobra.Command, []string) error {
		out := []E{}
		err := read(a, open, func(x T) error {
			l, err := list(x)
			out = append(out, l...)
			return err
		})
		if err != nil {
			return err
		}
		return a.printer.Print(view(out))
	}
	return cmd
}
