package netdev

import (
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A memo scope (Memo) answers repeated lookups from the first answer:
// interfaces by name and by index, GRO, the name of the current namespace
// and the namespace a veth's peer is in, each per network namespace. A
// batch of one-entry commands looks up the same few interfaces for every
// entry; each lookup is a netlink round trip, more than the entry's own
// write costs. Every change this package makes (and Forget) empties it.
// Outside a scope nothing is kept.
var memo struct {
	sync.Mutex
	depth   int
	byName  map[memoKey]Iface
	byIndex map[memoKey]Iface
	gro     map[memoKey]bool
	nsName  map[memoKey]string
	peerNS  map[memoKey]memoNS
	// The thread that opened the outermost scope (locked to its goroutine
	// for the scope) and its namespace: asked from that thread, the
	// namespace is known without a stat of /proc (which costs more than
	// an answer from the memo).
	tid  int
	here uint64
}

// memoKey names an object in one network namespace (by its inode).
type memoKey struct {
	ns    uint64
	name  string
	index int
}

// memoNS is a namespace found once: where to open it again, and its name.
type memoNS struct {
	path, name string
	ino        uint64
}

// Memo opens a memo scope; end closes it. Scopes nest. The caller keeps
// its goroutine locked to its thread (runtime.LockOSThread) for the scope.
func Memo() (end func()) {
	here, err := CurrentInode()
	memo.Lock()
	defer memo.Unlock()
	if memo.depth == 0 {
		clearMemo()
		memo.tid, memo.here = 0, 0
		if err == nil {
			memo.tid, memo.here = unix.Gettid(), here
		}
	}
	memo.depth++
	return func() {
		memo.Lock()
		defer memo.Unlock()
		if memo.depth--; memo.depth == 0 {
			clearMemo()
		}
	}
}

// Forget empties the memo: for callers that change interfaces by other
// means (attaching an XDP program changes what Lookup reports).
func Forget() {
	memo.Lock()
	defer memo.Unlock()
	clearMemo()
}

func clearMemo() {
	memo.byName, memo.byIndex, memo.gro = map[memoKey]Iface{}, map[memoKey]Iface{}, map[memoKey]bool{}
	memo.nsName, memo.peerNS = map[memoKey]string{}, map[memoKey]memoNS{}
}

// memoized answers from table under key, or computes, keeps (on success,
// inside a scope) and returns the answer.
func memoized[V any](table func() map[memoKey]V, key memoKey, compute func() (V, error)) (V, error) {
	if here, ok := memoScope(); ok {
		key.ns = here
		memo.Lock()
		v, hit := table()[key]
		memo.Unlock()
		if hit {
			return v, nil
		}
		v, err := compute()
		if err == nil {
			memo.Lock()
			if memo.depth > 0 {
				table()[key] = v
			}
			memo.Unlock()
		}
		return v, err
	}
	return compute()
}

// memoScope reports whether a scope is open, and the calling thread's
// namespace inode.
func memoScope() (uint64, bool) {
	memo.Lock()
	open, tid, here := memo.depth > 0, memo.tid, memo.here
	memo.Unlock()
	if !open {
		return 0, false
	}
	if tid != 0 && unix.Gettid() == tid {
		return here, true
	}
	here, err := CurrentInode()
	return here, err == nil
}

// peerNamespace is FindByID through the memo: the namespace is opened again
// by the path it was found at.
func peerNamespace(nsid int) (Namespace, error) {
	found, err := memoized(func() map[memoKey]memoNS { return memo.peerNS }, memoKey{index: nsid}, func() (memoNS, error) {
		ns, err := FindByID(nsid)
		if err != nil {
			return memoNS{}, err
		}
		defer ns.Handle.Close()
		var st unix.Stat_t
		if err := unix.Fstat(int(ns.Handle), &st); err != nil {
			return memoNS{}, err
		}
		return memoNS{path: ns.path, name: ns.Name, ino: st.Ino}, nil
	})
	if err != nil {
		return Namespace{}, err
	}
	h, err := netns.GetFromPath(found.path)
	var st unix.Stat_t
	if err == nil && (unix.Fstat(int(h), &st) != nil || st.Ino != found.ino) {
		h.Close()
		err = ErrNoNamespace // the path holds another namespace now
	}
	if err != nil {
		Forget()
		return FindByID(nsid)
	}
	return Namespace{Handle: h, Name: found.name, path: found.path}, nil
}
