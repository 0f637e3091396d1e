package maps

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultLockTimeout is how long a mutating command waits for the lock.
const DefaultLockTimeout = 5 * time.Second

// Lock is the exclusive flock on a root folder. Every mutating command holds
// one; functions that write pinned state take it as an argument.
type Lock struct {
	root *Root
	f    *os.File
}

// Lock takes the exclusive lock on the root folder, waiting up to timeout.
// On timeout it returns an error wrapping ErrLocked.
//
// It waits in a blocking flock, so that the kernel hands the lock over as
// soon as it is released, rather than polling for it (waiters polling
// every few milliseconds lose to those that happen to ask at the right
// moment, and some starve past their timeout under many writers).
func (r *Root) Lock(timeout time.Duration) (*Lock, error) {
	f, err := os.Open(r.Path)
	if err != nil {
		return nil, fmt.Errorf("open for locking: %w", NoPermission(r.Path, err))
	}
	fd := int(f.Fd())
	err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return &Lock{root: r, f: f}, nil // free: no waiting
	}
	if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", r.Path, err)
	}
	got := make(chan error, 1)
	go func() {
		for {
			err := unix.Flock(fd, unix.LOCK_EX)
			if !errors.Is(err, unix.EINTR) {
				got <- err
				return
			}
		}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", r.Path, err)
		}
		return &Lock{root: r, f: f}, nil
	case <-timer.C:
		// The wait cannot be cancelled: when it ends, give the lock up.
		go func() {
			<-got
			f.Close() // closing the file releases the lock
		}()
		return nil, fmt.Errorf("waited %s for the lock on %s: %w; retry, or raise --lock-timeout", timeout, r.Path, ErrLocked)
	}
}

// Root returns the root this lock protects.
func (l *Lock) Root() *Root { return l.root }

// Current reports whether the lock is still on the folder at its root's
// path: false once that folder was removed (and maybe made again).
func (l *Lock) Current() bool {
	if l == nil || l.f == nil {
		return false
	}
	var held, now unix.Stat_t
	if unix.Fstat(int(l.f.Fd()), &held) != nil || unix.Stat(l.root.Path, &now) != nil {
		return false
	}
	return held.Ino == now.Ino && held.Dev == now.Dev
}

// Release gives the lock up. It is safe to call more than once.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}
