package apply

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/maps"
)

func TestWatchStatus(t *testing.T) {
	var s WatchStatus
	t0 := time.Unix(1000, 0)
	if s.Live(t0) == nil || s.Ready() == nil {
		t.Errorf("a status never started is live or ready")
	}
	s.start(t0, 10*time.Second)
	if err := s.Live(t0.Add(StallAfter)); err != nil {
		t.Errorf("live at the limit: %v", err)
	}
	if err := s.Live(t0.Add(StallAfter + time.Second)); err == nil || !strings.Contains(err.Error(), "has not turned for 1m1s") {
		t.Errorf("a loop stalled past the limit: %v", err)
	}
	s.turn(t0.Add(StallAfter))
	if err := s.Live(t0.Add(StallAfter + time.Second)); err != nil {
		t.Errorf("after a turn: %v", err)
	}
	// A long lock timeout stretches the limit.
	s.start(t0, time.Minute)
	if err := s.Live(t0.Add(2 * time.Minute)); err != nil {
		t.Errorf("within three lock timeouts: %v", err)
	}

	s.record(Event{Err: &InvalidFileError{File: "f", Problems: []Problem{{Line: 1, Msg: "bad"}}}})
	if err := s.Ready(); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("ready after a bad file: %v", err)
	}
	s.record(Event{})
	s.applied(true, "", t0.Add(time.Second))
	s.record(Event{Repaired: true})
	s.applied(false, "", t0.Add(2*time.Second))
	s.record(Event{Err: errors.New("lock timeout"), Repaired: true})
	snap := s.Snapshot()
	if s.Ready() != nil || !snap.Ready || !snap.FileApplied || snap.Applied != 1 || snap.Repaired != 1 || snap.Failed != 2 ||
		!snap.LastSuccess.Equal(t0.Add(2*time.Second)) {
		t.Errorf("after an apply, a repair and a failed reconcile: %+v", snap)
	}
	s.record(Event{Err: &InvalidFileError{File: "f"}})
	if snap := s.Snapshot(); !snap.Ready || snap.FileApplied {
		t.Errorf("a bad version after a good one: %+v", snap)
	}
}

// An agent whose first apply failed for a reason other than the file (the
// lock was held) is ready once a reconcile applies the file, though that
// reconcile, with nothing to write, reports nothing; an upgrade that
// failed keeps it not ready, with the reason.
func TestWatchReadyAfterAFailedFirstApply(t *testing.T) {
	root, err := maps.OpenRoot(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "state.yaml")
	if err := os.WriteFile(file, []byte("load:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	held, err := root.Lock(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st := &WatchStatus{}
	st.start(time.Now(), 20*time.Millisecond)
	var reported []Event
	w := &watcher{root: root, path: file, wopts: WatchOptions{LockTimeout: 20 * time.Millisecond, Status: st},
		report: func(ev Event) { st.record(ev); reported = append(reported, ev) }}
	w.poll(time.Now())
	if len(reported) != 1 || !errors.Is(reported[0].Err, maps.ErrLocked) || st.Ready() == nil {
		t.Fatalf("the first apply with the lock held: %+v, ready: %v", reported, st.Ready())
	}
	held.Release()
	w.reconcile()
	if len(reported) != 1 {
		t.Errorf("a reconcile with nothing to write reported %+v", reported[1:])
	}
	if err := st.Ready(); err != nil || !st.Snapshot().FileApplied {
		t.Errorf("after the reconcile applied the file: %v %+v", err, st.Snapshot())
	}

	st = &WatchStatus{}
	st.applied(true, "upgrade route to this build's programs: verifier says no", time.Now())
	if err := st.Ready(); err == nil || !strings.Contains(err.Error(), "verifier says no") || !st.Snapshot().FileApplied {
		t.Errorf("after a failed upgrade: %v %+v", err, st.Snapshot())
	}
}
