package apply

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/tunmux/tunmux/maps"
)

// PollInterval is how often Watch looks at the file.
const PollInterval = 200 * time.Millisecond

// DefaultSettle is how long Watch waits for a file's content to stay the
// same before it applies it (--settle).
const DefaultSettle = 500 * time.Millisecond

// DefaultResync is how often Watch reconciles again when nothing happened
// (--resync).
const DefaultResync = 10 * time.Second

// LinkDebounce is how long Watch gathers link events before it reconciles
// once for all of them.
const LinkDebounce = 200 * time.Millisecond

// WatchOptions are the parameters of Watch beyond those of each apply.
type WatchOptions struct {
	LockTimeout time.Duration // how long each apply waits for the lock
	// Settle is how long new content must stay unchanged (same bytes,
	// size, modification time and inode across polls) before it is
	// applied; 0 applies every change seen. Content that arrives under a
	// new inode (a file renamed into place) and parses is applied at once.
	Settle time.Duration
	// Resync is how often the last good content is reconciled again to
	// repair drift (0: only on file changes and link events).
	Resync time.Duration
	// MaxPrune is ApplyGuarded's limit, in percent (NoPruneLimit: none).
	MaxPrune int
	// Select picks the node's view of a fleet file, and expands ${VAR}.
	Select Selector
	// Status, when set, is kept up to date with the loop's turns and the
	// outcomes reported (for /healthz, /readyz and metrics).
	Status *WatchStatus
}

// Event is one outcome that Watch reports.
type Event struct {
	Result Result
	Err    error
	// Repaired is true when a reconcile that no change of the file caused
	// (the resync interval, a link event) found and wrote changes: the
	// pinned state had drifted from the file.
	Repaired bool
}

// Watch applies the file, then again each time its content changes and has
// settled (WatchOptions.Settle), until ctx ends. A file that does not parse
// or validate, or whose prune is refused (ApplyGuarded), changes nothing, so
// the last good state keeps running (warm reconfiguration); report hears of
// every such attempt. Every WatchOptions.Resync, and soon after link events
// in the namespace of opts.Netns, the file is reconciled again; a reconcile
// that writes changes is reported as a repair, one that finds nothing is
// not reported, and its errors are reported once until they change. A dry
// run reports file changes only. The lock is taken for each apply only.
func Watch(ctx context.Context, root *maps.Root, path string, opts Options, wopts WatchOptions, report func(Event)) error {
	if st := wopts.Status; st != nil {
		st.start(time.Now(), wopts.LockTimeout)
		inner := report
		report = func(ev Event) {
			st.record(ev)
			inner(ev)
		}
	}
	w := &watcher{root: root, path: path, opts: opts, wopts: wopts, report: report}
	poll := time.NewTicker(PollInterval)
	defer poll.Stop()
	var resync <-chan time.Time
	links := make(chan struct{}, 1)
	linkErrs := make(chan error, 1)
	if !opts.DryRun {
		if wopts.Resync > 0 {
			t := time.NewTicker(wopts.Resync)
			defer t.Stop()
			resync = t.C
		}
		go w.watchLinks(ctx, links, linkErrs)
	}
	var gathered <-chan time.Time
	w.poll(time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-poll.C:
			if wopts.Status != nil {
				wopts.Status.turn(time.Now())
			}
			w.poll(now)
		case <-resync:
			w.reconcile()
		case <-links:
			if gathered == nil {
				gathered = time.After(LinkDebounce)
			}
		case <-gathered:
			gathered = nil
			w.reconcile()
		case err := <-linkErrs:
			w.report(Event{Result: Result{File: path}, Err: err})
		}
	}
}

// content is one version of the file, parsed.
type content struct {
	sum   [sha256.Size]byte
	doc   *Document
	err   error           // of parsing
	names map[string]bool // the interfaces it names; nil: any may matter
	// the last error reported of its reconciles, not to be repeated
	lastErr string
}

// parses reports whether the content parsed without a problem of form.
func (c *content) parses() bool { return c.err == nil && len(c.doc.problems) == 0 }

type watcher struct {
	root   *maps.Root
	path   string
	opts   Options
	wopts  WatchOptions
	report func(Event)

	file fileState
	// settled is the latest content that settled (the desired state); good
	// is the latest whose apply did not keep the last good state, which
	// reconciles repair when settled is bad. Either may be nil.
	settled, good *content
	linkNames     linkFilter
	// upgraded: an apply of this process has upgraded the file's
	// dataplanes to this build's programs (Options.Upgrade).
	upgraded bool
}

// poll reads the file and applies new content once it has settled.
func (w *watcher) poll(now time.Time) {
	c, ok := w.file.next(w.path, now, w.wopts.Settle, w.wopts.Select, w.settled, w.report)
	if !ok {
		return
	}
	w.settled = c
	res, err := w.apply(c)
	w.report(Event{Result: res, Err: err})
	if err != nil {
		c.lastErr = err.Error()
	}
	if !KeepsLastGood(err) {
		w.good = c
	}
	w.linkNames.set(w.settled, w.good)
}

// reconcile applies the desired state again: the settled content if it
// failed before (an interface it names may exist now), and the last good
// content when the settled one still cannot be applied. What it writes is
// a repair; what it finds nothing to do is not reported.
func (w *watcher) reconcile() {
	if w.opts.DryRun {
		return
	}
	if w.settled != nil && w.settled != w.good {
		res, err := w.apply(w.settled)
		if !KeepsLastGood(err) {
			// The file applies now: reported as an apply of the file.
			w.good = w.settled
			w.linkNames.set(w.settled, w.good)
			if w.settled.changed(res, err) {
				w.report(Event{Result: res, Err: err})
			}
			return
		}
		if w.settled.changed(res, err) {
			w.report(Event{Result: res, Err: err})
		}
	}
	if w.good == nil {
		return
	}
	res, err := w.apply(w.good)
	if w.good.changed(res, err) {
		w.report(Event{Result: res, Err: err, Repaired: err == nil})
	}
}

// changed reports whether a reconcile of the content is worth reporting:
// it wrote changes, or failed otherwise than it did last time.
func (c *content) changed(res Result, err error) bool {
	if err == nil {
		c.lastErr = ""
		return len(res.Changes) > 0
	}
	if msg := err.Error(); msg != c.lastErr {
		c.lastErr = msg
		return true
	}
	return false
}

// apply applies one content under the lock.
func (w *watcher) apply(c *content) (Result, error) {
	if c.err != nil {
		return Result{File: w.path}, c.err
	}
	var lock *maps.Lock
	if !w.opts.DryRun {
		var err error
		if lock, err = w.root.Lock(w.wopts.LockTimeout); err != nil {
			return Result{File: w.path}, err
		}
		defer lock.Release()
	}
	opts := w.opts
	// The first apply that gets this far upgrades the file's dataplanes to
	// this build's programs: an agent that starts adopts the pinned state.
	opts.Upgrade = !w.upgraded
	res, err := ApplyGuarded(w.root, lock, w.path, c.doc, opts, w.wopts.MaxPrune)
	if err == nil && res.UpgradeError == "" {
		w.upgraded = true
	}
	if st := w.wopts.Status; st != nil && err == nil {
		// Whether it is reported or not (a reconcile with nothing to
		// write is not), the file applied.
		st.applied(c == w.settled, res.UpgradeError, time.Now())
	}
	return res, err
}

// IsBadFile reports whether err says the file itself is wrong.
func IsBadFile(err error) bool {
	var inv *InvalidFileError
	return errors.As(err, &inv) || errors.Is(err, maps.ErrInvalid)
}
