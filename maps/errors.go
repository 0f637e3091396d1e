package maps

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"
)

// Sentinel errors that callers test with errors.Is.
var (
	// ErrNotFound: the key, interface or object asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: add of a key that is already present.
	ErrExists = errors.New("already exists")
	// ErrIncompatible: pinned state does not match what this binary expects.
	ErrIncompatible = errors.New("incompatible pinned state")
	// ErrSplit: a pin is not the object the pinned programs and links use
	// (a map pin removed or replaced, a link moved to another program), so
	// entries written through the pins would not reach the datapath.
	// Unlike ErrIncompatible it is repaired by loading the dataplane again.
	ErrSplit = errors.New("the pins and the datapath disagree")
	// ErrUntrusted: the root is owned by another user, who could remove
	// its pins or hold its lock.
	ErrUntrusted = errors.New("the bpffs root is not tunmux's own")
	// ErrLocked: another tunmux command held the lock past the timeout.
	ErrLocked = errors.New("lock is held by another tunmux command")
	// ErrNotLoaded: the dataplane has no pinned state under the root.
	ErrNotLoaded = errors.New("dataplane is not loaded")
	// ErrInUse: the object is still referenced and cannot be removed.
	ErrInUse = errors.New("in use")
	// ErrInvalid: bad input; every *InvalidError matches it.
	ErrInvalid = errors.New("invalid input")
	// ErrPermission: the caller may not read or write the pins or the
	// kernel objects (not root, or without CAP_BPF and CAP_NET_ADMIN).
	ErrPermission = errors.New("permission denied: tunmux needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)")
)

// NoPermission reports a permission error met on path as ErrPermission,
// and other errors as they are: a state that could not be read is never
// reported as "not loaded".
func NoPermission(path string, err error) error {
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%s: %w", path, ErrPermission)
	}
	return err
}

// InvalidError is bad input. It names the flag (or argument), the value given
// and the accepted form; commands exit 2 on it and change nothing.
type InvalidError struct {
	Flag     string // "--vni", or an argument name such as "IFACE"
	Value    string // the value given
	Problem  string // what is wrong with it
	Accepted string // the accepted form
}

// Invalid returns an *InvalidError.
func Invalid(flag, value, problem, accepted string) *InvalidError {
	return &InvalidError{Flag: flag, Value: value, Problem: problem, Accepted: accepted}
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString(e.Flag)
	if e.Value != "" {
		fmt.Fprintf(&b, " %q", e.Value)
	}
	b.WriteString(": ")
	b.WriteString(e.Problem)
	if e.Accepted != "" {
		fmt.Fprintf(&b, " (accepted: %s)", e.Accepted)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true for every *InvalidError.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }
