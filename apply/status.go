package apply

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tunmux/tunmux/metrics"
)

// StallAfter is how long Watch's loop may go without turning before
// WatchStatus.Live calls it stuck (at least; three lock timeouts when
// longer): an apply of a large file, or one waiting for the lock, holds it.
const StallAfter = 60 * time.Second

// WatchStatus is what a running Watch has done, for probes and metrics: it
// is safe to read while Watch runs. The zero value is ready for use.
type WatchStatus struct {
	mu      sync.Mutex
	started time.Time
	turned  time.Time // the loop's last turn
	stall   time.Duration
	lastErr string
	// upgradeErr: the last apply could not put this build's programs in
	// place (the agent is not ready until it can).
	upgradeErr string
	snapshot   metrics.AgentStatus
}

// start marks the loop as running.
func (s *WatchStatus) start(now time.Time, lockTimeout time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started, s.turned, s.stall = now, now, max(StallAfter, 3*lockTimeout)
}

// turn records one turn of the loop.
func (s *WatchStatus) turn(now time.Time) {
	s.mu.Lock()
	s.turned = now
	s.mu.Unlock()
}

// record counts one reported outcome; a bad version of the file (kept
// out, the last good state running) clears FileApplied.
func (s *WatchStatus) record(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case ev.Err != nil:
		s.snapshot.Failed++
		s.lastErr = ev.Err.Error()
		if KeepsLastGood(ev.Err) && !ev.Repaired {
			s.snapshot.FileApplied = false
		}
	case ev.Repaired:
		s.snapshot.Repaired++
	default:
		s.snapshot.Applied++
	}
}

// applied records an apply that succeeded, reported or not: current is
// true when it applied the latest version of the file (not the last good
// one). The agent is ready once the latest version has applied with this
// build's programs in place (upgradeErr: why they are not).
func (s *WatchStatus) applied(current bool, upgradeErr string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshot.LastSuccess = now
	s.upgradeErr = upgradeErr
	if !current {
		return
	}
	s.snapshot.FileApplied = true
	if upgradeErr == "" {
		s.snapshot.Ready = true
		s.lastErr = ""
	}
}

// Snapshot returns the counts and state so far.
func (s *WatchStatus) Snapshot() metrics.AgentStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot
}

// Live is nil while the loop turns (a liveness probe's answer); an error
// says since when it has not.
func (s *WatchStatus) Live(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started.IsZero() {
		return errors.New("apply --watch has not started")
	}
	if idle := now.Sub(s.turned); idle > s.stall {
		return fmt.Errorf("apply --watch has not turned for %s (since %s)", idle.Round(time.Second), s.turned.UTC().Format(time.RFC3339))
	}
	return nil
}

// Ready is nil once Watch has applied the file since it started (a
// readiness probe's answer): the node's state is the file's, or the last
// good version's. Before that, the error says what stands in the way.
func (s *WatchStatus) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snapshot.Ready {
		return nil
	}
	if s.upgradeErr != "" {
		return fmt.Errorf("not ready: %s", s.upgradeErr)
	}
	if s.lastErr != "" {
		return fmt.Errorf("not ready: the file has not applied since apply --watch started: %s", s.lastErr)
	}
	return errors.New("not ready: the first apply of the file is not done")
}
