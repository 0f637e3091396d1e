package maps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	// Tightened says how the root's mode was narrowed to 0700 on taking
	// the lock ("" when it already was); the command warns with it.
	Tightened string
	// Waited is how long taking the lock waited for another holder.
	Waited   time.Duration
	acquired time.Time
}

// Held is how long the lock has been held (until Release, from then on).
func (l *Lock) Held() time.Duration {
	if l == nil || l.acquired.IsZero() {
		return 0
	}
	return time.Since(l.acquired)
}

// Lock takes the exclusive lock on the root folder, waiting up to timeout.
// On timeout it returns an error wrapping ErrLocked.
//
// It waits in a blocking flock, so that the kernel hands the lock over as
// soon as it is released, rather than polling for it (waiters polling
// every few milliseconds lose to those that happen to ask at the right
// moment, and some starve past their timeout under many writers).
func (r *Root) Lock(timeout time.Duration) (*Lock, error) {
	start := time.Now()
	f, err := os.Open(r.Path)
	if err != nil {
		return nil, fmt.Errorf("open for locking: %w", NoPermission(r.Path, err))
	}
	fd := int(f.Fd())
	tightened, err := guardRoot(r.Path, fd)
	if err != nil {
		f.Close()
		return nil, err
	}
	err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return &Lock{root: r, f: f, Tightened: tightened, acquired: time.Now()}, nil // free: no waiting
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
		now := time.Now()
		return &Lock{root: r, f: f, Tightened: tightened, Waited: now.Sub(start), acquired: now}, nil
	case <-timer.C:
		// The wait cannot be cancelled: when it ends, give the lock up.
		go func() {
			<-got
			f.Close() // closing the file releases the lock
		}()
		return nil, fmt.Errorf("waited %s for the lock on %s: %w; retry, or raise --lock-timeout", timeout, r.Path, ErrLocked)
	}
}

// guardRoot makes sure only tunmux's own user can reach the root open as
// fd: whoever may open the folder may hold its lock, and so every writer
// off, and whoever owns it may remove its pins. A root owned by another
// user is refused (ErrUntrusted); a root that others may open is narrowed
// to 0700, and guardRoot says so. The bpffs mount itself is left as its
// mount options made it (narrowing it would lock other users out of every
// pin on it).
func guardRoot(path string, fd int) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("stat %s: %w", path, err)
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return "", fmt.Errorf("bpffs root %s is owned by uid %d, not by uid %d that runs tunmux: its owner could remove the pins or hold the lock from every writer; 'chown %d %s' hands it to tunmux, or choose another --bpffs: %w",
			path, st.Uid, uid, uid, path, ErrUntrusted)
	}
	perm := st.Mode & 0o7777
	if perm&0o077 == 0 || isMountRoot(path, st.Dev) {
		return "", nil
	}
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return "", fmt.Errorf("narrow the mode of %s to 0700: %w", path, err)
	}
	return fmt.Sprintf("narrowed the mode of %s from %04o to 0700: others could open it and hold the lock from every writer", path, perm), nil
}

// isMountRoot reports whether path (on device dev) is the root of its mount.
func isMountRoot(path string, dev uint64) bool {
	var parent unix.Stat_t
	if unix.Stat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return parent.Dev != dev
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
