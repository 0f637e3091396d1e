// Package testnet builds what tunmux's tests run against: network namespaces
// and veths with unique names, private bpffs roots, and waits for
// conditions instead of sleeping. Everything it creates is removed by
// t.Cleanup, even when the test fails.
package testnet

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/netdev"
)

// RequireRoot skips the test, saying why, unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it creates network namespaces and BPF objects (run make test as root)")
	}
}

// Unique returns prefix followed by a random suffix, short enough for
// interface names when prefix is.
func Unique(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Netns is a named network namespace created for a test.
type Netns struct {
	Name string
}

// NewNetns creates a network namespace with a unique name starting with
// prefix, brings its loopback up, and removes it when the test ends.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	ns := &Netns{Name: Unique("tmxt-" + prefix + "-")}
	Run(t, "ip", "netns", "add", ns.Name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns.Name).Run() })
	ns.Run(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Path is the namespace's bind mount, for nsenter --net=PATH.
func (ns *Netns) Path() string { return filepath.Join(netdev.NetnsDir, ns.Name) }

// Cmd returns a command that runs inside the namespace (through nsenter,
// which unlike `ip netns exec` keeps the host's /sys and its bpffs).
func (ns *Netns) Cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + ns.Path(), "--", name}, args...)...)
}

// Run runs a command inside the namespace and fails the test if it fails.
func (ns *Netns) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return runCmd(t, ns.Cmd(name, args...))
}

// Try runs a command inside the namespace and returns its combined output and error.
func (ns *Netns) Try(name string, args ...string) (string, error) {
	out, err := ns.Cmd(name, args...).CombinedOutput()
	return string(out), err
}

// Do runs fn on a thread inside the namespace.
func (ns *Netns) Do(t testing.TB, fn func() error) {
	t.Helper()
	if err := netdev.Do(ns.Name, fn); err != nil {
		t.Fatalf("in netns %s: %v", ns.Name, err)
	}
}

// Run runs a command in the test's namespace and fails the test if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return runCmd(t, exec.Command(name, args...))
}

func runCmd(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out.String())
	}
	return out.String()
}

// Veth creates a veth pair, end a in namespace na and end b in nb, both up.
func Veth(t testing.TB, na *Netns, a string, nb *Netns, b string) {
	t.Helper()
	Run(t, "ip", "link", "add", a, "netns", na.Name, "type", "veth", "peer", b, "netns", nb.Name)
	na.Run(t, "ip", "link", "set", a, "up")
	nb.Run(t, "ip", "link", "set", b, "up")
}

// WaitFor polls cond until it holds or timeout passes, then fails the test
// naming what it waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitUp waits until interface name in ns reports carrier (LOWER_UP).
func (ns *Netns) WaitUp(t testing.TB, name string) {
	t.Helper()
	WaitFor(t, 10*time.Second, fmt.Sprintf("%s/%s to come up", ns.Name, name), func() bool {
		out, err := ns.Try("ip", "-o", "link", "show", "dev", name)
		return err == nil && strings.Contains(out, "LOWER_UP")
	})
}

// BPFRoot returns a fresh bpffs root for one test, removed (after unloading
// whatever the test loaded there, which detaches its links) when it ends.
// unload is called with the root path to undo what was loaded.
func BPFRoot(t testing.TB, unload func(root string)) string {
	t.Helper()
	if err := os.MkdirAll("/sys/fs/bpf", 0o755); err != nil {
		t.Fatal(err)
	}
	if !isBPFFS("/sys/fs/bpf") {
		Run(t, "mount", "-t", "bpf", "bpf", "/sys/fs/bpf")
	}
	root := filepath.Join("/sys/fs/bpf", Unique("tmxt-"))
	t.Cleanup(func() {
		if unload != nil {
			unload(root)
		}
		_ = os.RemoveAll(root)
	})
	return root
}

func isBPFFS(path string) bool {
	out, err := exec.Command("stat", "-f", "-c", "%T", path).Output()
	return err == nil && strings.TrimSpace(string(out)) == "bpf_fs"
}

// Background starts a command that runs until the test ends (or until the
// returned stop is called), then is killed and waited for.
func Background(t testing.TB, cmd *exec.Cmd) (stop func() string) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stopped := false
	stop = func() string {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		return out.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}
