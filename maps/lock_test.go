package maps

import (
	"errors"
	"testing"
	"time"
)

// A waiter gets the lock when its holder releases it, within its timeout;
// one whose holder keeps it times out with ErrLocked; a timed-out waiter
// leaves the lock free for the next once the holder lets go.
func TestLockIsHandedOverAndTimesOut(t *testing.T) {
	r := &Root{Path: t.TempDir()}
	held, err := r.Lock(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lock(50 * time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second lock while held: %v, want ErrLocked", err)
	}
	got := make(chan error, 1)
	waiting := make(chan struct{})
	go func() {
		close(waiting)
		l, err := r.Lock(time.Minute)
		if err == nil {
			l.Release()
		}
		got <- err
	}()
	<-waiting
	held.Release()
	if err := <-got; err != nil {
		t.Fatalf("the waiter after the release: %v", err)
	}
	// The waiter that timed out above let the lock go: it is free.
	l, err := r.Lock(time.Minute)
	if err != nil {
		t.Fatalf("lock after everyone let go: %v", err)
	}
	l.Release()
}
