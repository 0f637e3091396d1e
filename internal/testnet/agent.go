package testnet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// AgentLine is one JSON line of `tunmux -o json apply --watch`.
type AgentLine struct {
	Result struct {
		Applied bool `json:"applied"`
		DryRun  bool `json:"dry_run"`
		Changes []struct {
			Action, Kind, Key, Detail string
			Line                      int
		} `json:"changes"`
		Summary map[string]int `json:"summary"`
		Fleet   *struct {
			Node   string `json:"node"`
			Listed bool   `json:"listed"`
		} `json:"fleet"`
	} `json:"result"`
	Error        string `json:"error"`
	KeptLastGood bool   `json:"kept_last_good"`
	Repaired     bool   `json:"repaired"`
}

// OK reports whether the line is an apply of the file that succeeded.
func (l AgentLine) OK() bool { return l.Error == "" && !l.Repaired }

// Agent is a running `tunmux -o json apply --watch`, its lines gathered as
// it prints them; it is killed, if still running, when the test ends.
type Agent struct {
	t      testing.TB
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []AgentLine
	stderr strings.Builder
	next   int // the first line WaitLine looks at
	exited chan struct{}
	err    error // of Wait, once exited
}

// StartAgent starts bin with args (which must hold -o json and apply
// --watch) and env added to its environment.
func StartAgent(t testing.TB, bin string, env []string, args ...string) *Agent {
	t.Helper()
	a := &Agent{t: t, exited: make(chan struct{})}
	a.cmd = exec.Command(bin, args...)
	a.cmd.Env = append(os.Environ(), env...)
	a.cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.stderr.Write(p)
	})
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var l AgentLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l.Error = fmt.Sprintf("not JSON (%v): %s", err, sc.Text())
			}
			a.mu.Lock()
			a.lines = append(a.lines, l)
			a.mu.Unlock()
		}
		err := a.cmd.Wait()
		a.mu.Lock()
		a.err = err
		a.mu.Unlock()
		close(a.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
	})
	return a
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// WaitLine waits for a line, after those an earlier WaitLine returned, that
// cond accepts, and returns it.
func (a *Agent) WaitLine(what string, cond func(AgentLine) bool) AgentLine {
	a.t.Helper()
	var found AgentLine
	WaitFor(a.t, 60*time.Second, what, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		select {
		case <-a.exited:
			a.t.Fatalf("the agent ended while waiting for %s: %v\n%s", what, a.err, a.stderr.String())
		default:
		}
		for i := a.next; i < len(a.lines); i++ {
			if cond(a.lines[i]) {
				found, a.next = a.lines[i], i+1
				return true
			}
		}
		return false
	})
	return found
}

// MetricsAddr waits for the address the agent serves /metrics on (apply
// --metrics-addr), as it says on standard error.
func (a *Agent) MetricsAddr() string {
	a.t.Helper()
	var addr string
	WaitFor(a.t, 30*time.Second, "the agent's serving line", func() bool {
		for _, line := range strings.Split(a.Stderr(), "\n") {
			if strings.Contains(line, "tunmux: serving /metrics") {
				f := strings.Fields(line)
				addr = f[len(f)-1]
				return true
			}
		}
		return false
	})
	return addr
}

// Lines returns the lines printed so far.
func (a *Agent) Lines() []AgentLine {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AgentLine(nil), a.lines...)
}

// Stderr is what the agent printed on standard error so far.
func (a *Agent) Stderr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stderr.String()
}

// Stop sends sig and waits for the agent to end; it returns Wait's error
// (nil for exit 0), or fails the test if it outlives timeout. Stopping an
// agent that has ended already returns how it ended.
func (a *Agent) Stop(sig syscall.Signal, timeout time.Duration) error {
	a.t.Helper()
	select {
	case <-a.exited:
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.err
	default:
	}
	_ = a.cmd.Process.Signal(sig)
	select {
	case <-a.exited:
	case <-time.After(timeout):
		a.t.Fatalf("the agent outlived %s after %v", timeout, sig)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}
