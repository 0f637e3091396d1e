package main

import (
	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
)

// edit runs a command's write through apply, as a one-entry document in
// mode: the same checks, conflicts, warnings, dependency order and batch
// writes as a desired-state file. names are what errors call the fields the
// command takes as arguments. The lock is held from before (a read for the
// output, such as the entry a delete removes) to after (a read of what was
// written); warnings are printed as they come.
func (a *app) edit(dp *dataplane.Dataplane, doc *apply.Document, mode apply.Mode, names map[string]string, before, after func(*maps.Root) error) (apply.Result, error) {
	var res apply.Result
	err := a.mutate(false, dp, func(lock *maps.Lock) error {
		if before != nil {
			// What the output needs of the entry as it was; if it cannot be
			// read, the write's own checks say why.
			_ = before(lock.Root())
		}
		var err error
		res, err = apply.Apply(lock.Root(), lock, "", doc, apply.Options{Netns: a.netns, Mode: mode, Names: names, Version: version})
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
