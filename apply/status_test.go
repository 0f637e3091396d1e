package apply

import (
	"errors"
	"strings"
	"testing"
	"time"
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

	s.record(Event{Err: &InvalidFileError{File: "f", Problems: []Problem{{Line: 1, Msg: "bad"}}}}, t0)
	if err := s.Ready(); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("ready after a bad file: %v", err)
	}
	s.record(Event{}, t0.Add(time.Second))
	s.record(Event{Repaired: true}, t0.Add(2*time.Second))
	s.record(Event{Err: errors.New("lock timeout"), Repaired: true}, t0.Add(3*time.Second))
	snap := s.Snapshot()
	if s.Ready() != nil || !snap.Ready || !snap.FileApplied || snap.Applied != 1 || snap.Repaired != 1 || snap.Failed != 2 ||
		!snap.LastSuccess.Equal(t0.Add(2*time.Second)) {
		t.Errorf("after an apply, a repair and a failed reconcile: %+v", snap)
	}
	s.record(Event{Err: &InvalidFileError{File: "f"}}, t0.Add(4*time.Second))
	if snap := s.Snapshot(); !snap.Ready || snap.FileApplied {
		t.Errorf("a bad version after a good one: %+v", snap)
	}
}
