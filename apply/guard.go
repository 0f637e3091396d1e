package apply

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
)

// DefaultMaxPrune is the share, in percent, of the pinned entries of a kind
// that one pruning apply may remove unless told otherwise (--max-prune).
const DefaultMaxPrune = 50

// MinMassPrune is the number of removals of one kind below which a prune is
// never refused, whatever share of that kind it is.
const MinMassPrune = 10

// NoPruneLimit is the limit that allows any prune (--allow-mass-prune).
const NoPruneLimit = 100

// PruneShare is how many entries of one kind an apply would remove, of how
// many are pinned.
type PruneShare struct {
	Kind   string `json:"kind"`
	Remove int    `json:"remove"`
	Pinned int    `json:"pinned"`
}

// MassPruneError is a prune refused because it would remove more than the
// allowed share of the pinned entries of some kind; nothing was changed.
type MassPruneError struct {
	File       string
	MaxPercent int
	Over       []PruneShare // the kinds over the limit
}

// Error says what the prune would remove and how to allow it.
func (e *MassPruneError) Error() string {
	parts := make([]string, 0, len(e.Over))
	for _, s := range e.Over {
		parts = append(parts, fmt.Sprintf("%d of the %d %ss pinned (%d%%)", s.Remove, s.Pinned, s.Kind, percent(s.Remove, s.Pinned)))
	}
	return fmt.Sprintf("%s: --prune would remove %s, more than --max-prune %d%% in one step; nothing changed (--allow-mass-prune allows it)",
		e.File, strings.Join(parts, " and "), e.MaxPercent)
}

// IsMassPrune reports whether err is a refused mass prune.
func IsMassPrune(err error) bool {
	var mp *MassPruneError
	return errors.As(err, &mp)
}

// KeepsLastGood reports whether err means that the apply changed nothing
// because of the file (a bad file, a refused mass prune), so that the state
// applied before stays.
func KeepsLastGood(err error) bool { return IsBadFile(err) || IsMassPrune(err) }

func percent(n, of int) int {
	if of == 0 {
		return 100
	}
	return n * 100 / of
}

// ApplyGuarded is Apply with a guard against mass prunes. With opts.Prune
// and maxPercent below NoPruneLimit, the changes are computed first (a dry
// run, under the same lock); if they remove at least MinMassPrune entries of
// a kind and more than maxPercent percent of that kind's pinned entries, the
// apply is refused: the dry run's Result comes back with a *MassPruneError
// and nothing is written. A dry run asked for is never refused: the refusal
// it foretells is a warning. Without prune, or without a limit, it is Apply.
func ApplyGuarded(root *maps.Root, lock *maps.Lock, file string, doc *Document, opts Options, maxPercent int) (Result, error) {
	if !opts.Prune || maxPercent >= NoPruneLimit {
		return Apply(root, lock, file, doc, opts)
	}
	dry := opts
	dry.DryRun = true
	res, err := Apply(root, lock, file, doc, dry)
	if err != nil {
		return res, err
	}
	over, err := pruneOverLimit(root, res.Changes, maxPercent)
	if err != nil {
		return res, err
	}
	if len(over) > 0 {
		refused := &MassPruneError{File: file, MaxPercent: maxPercent, Over: over}
		if opts.DryRun {
			res.Warnings = append(res.Warnings, "without --dry-run this apply would be refused: "+refused.Error())
			return res, nil
		}
		return res, refused
	}
	if opts.DryRun {
		return res, nil
	}
	if len(res.Changes) == 0 && !opts.Upgrade {
		// Nothing to write; the lock kept the state as the dry run saw it
		// (an upgrade is not foreseen by a dry run: it writes programs).
		res.DryRun = false
		return res, nil
	}
	return Apply(root, lock, file, doc, opts)
}

// pruneOverLimit returns the kinds whose removals pass the limit.
func pruneOverLimit(root *maps.Root, changes []dataplane.Change, maxPercent int) ([]PruneShare, error) {
	removals := map[string]int{}
	for _, c := range changes {
		if c.Action == "remove" {
			removals[c.Kind]++
		}
	}
	var over []PruneShare
	for kind, n := range removals {
		if n < MinMassPrune {
			continue
		}
		pinned, err := countPinned(root, kind)
		if err != nil {
			return nil, err
		}
		if pinned < n {
			// A kind this guard cannot count: every removal counts in full.
			pinned = n
		}
		if n*100 > maxPercent*pinned {
			over = append(over, PruneShare{Kind: kind, Remove: n, Pinned: pinned})
		}
	}
	sort.Slice(over, func(i, j int) bool { return over[i].Kind < over[j].Kind })
	return over, nil
}

// countPinned returns how many entries of a kind of change are pinned: the
// entries a prune of that kind chooses from (for slots, those added by
// hand or by a file's devmap section; tunnels' own slots go with them). A
// kind it does not know counts 0.
func countPinned(root *maps.Root, kind string) (int, error) {
	switch kind {
	case "tunnel":
		return count(root, dataplane.OpenEncap, func(e *dataplane.Encap) (int, error) { return length(e.State.ListTunnels()) })
	case "slot":
		return count(root, dataplane.OpenEncap, func(e *dataplane.Encap) (int, error) {
			slots, err := e.State.ListSlots()
			n := 0
			for _, s := range slots {
				if s.Explicit {
					n++
				}
			}
			return n, err
		})
	case "pair":
		return count(root, dataplane.OpenXconnect, func(x *dataplane.Xconnect) (int, error) { return length(x.State.ListPairs()) })
	case "session":
		return count(root, dataplane.OpenL2TP, func(l *dataplane.L2TP) (int, error) { return length(l.State.ListSessions()) })
	case "route":
		return count(root, dataplane.OpenRoute, func(r *dataplane.Route) (int, error) { return length(r.State.Routes()) })
	case "member":
		return count(root, dataplane.OpenMux, func(m *dataplane.Mux) (int, error) { return length(m.State.Members()) })
	case "peer":
		return count(root, dataplane.OpenRoute, func(r *dataplane.Route) (int, error) { return length(r.State.Peers()) })
	}
	return 0, nil
}

// count opens a dataplane and counts with it.
func count[D interface{ Close() }](root *maps.Root, open func(*maps.Root) (D, error), n func(D) (int, error)) (int, error) {
	d, err := open(root)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	return n(d)
}

// length is the length of a listing.
func length[T any](list []T, err error) (int, error) { return len(list), err }
