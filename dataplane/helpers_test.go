package dataplane

import (
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
)

// loadedRoot makes a private bpffs root with dp loaded (capacity max, 0 the
// default) and returns it locked; dp is unloaded when the test ends.
func loadedRoot(t *testing.T, dp *Dataplane, max uint32) (*maps.Root, *maps.Lock) {
	t.Helper()
	lock := testnet.LockRoot(t, func(r string) {
		if root, err := maps.OpenRoot(r, false); err == nil && root.Exists() {
			if lock, err := root.Lock(time.Second); err == nil {
				_, _ = Unload(lock, dp, UnloadOptions{})
				lock.Release()
			}
		}
	})
	if _, err := Load(lock, dp, LoadOptions{MaxEntries: max, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return lock.Root(), lock
}
