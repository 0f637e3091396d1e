package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// BuildTunmux builds the tunmux binary into a temporary folder and returns
// its path and a cleanup function; call it from TestMain.
func BuildTunmux() (string, func(), error) {
	dir, err := os.MkdirTemp("", "tunmux-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	bin := filepath.Join(dir, "tunmux")
	if err := BuildTunmuxAt(bin, ""); err != nil {
		cleanup()
		return "", nil, err
	}
	return bin, cleanup, nil
}

// BuildTunmuxAt builds the tunmux binary at bin, statically as the Makefile
// does, with ldflags (-X settings: a version, a commit time, a code variant).
func BuildTunmuxAt(bin, ldflags string) error {
	cmd := exec.Command("go", "build", "-o", bin, "-ldflags", ldflags, "./cmd/tunmux")
	cmd.Dir = TopDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/tunmux: %v\n%s", err, out)
	}
	return nil
}

// CodeVariant is the ldflags setting that builds a binary whose programs are
// other code doing the same (see dataplane.codeVariant): a newer build.
func CodeVariant(n int) string {
	return fmt.Sprintf("-X github.com/tunmux/tunmux/dataplane.codeVariant=%d", n)
}

// TopDir returns the repository's top folder.
func TopDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Result is what one tunmux invocation did.
type Result struct {
	Args   []string
	Stdout string
	Stderr string
	Code   int
}

func (r Result) String() string {
	return fmt.Sprintf("tunmux %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// Tunmux runs the binary at bin with args, as a separate process. Tests
// always name their own bpffs root: without --bpffs it panics, so that no
// test touches the machine's default root.
func Tunmux(bin string, args ...string) Result { return TunmuxEnv(bin, nil, args...) }

// TunmuxEnv is Tunmux with variables (NAME=VALUE) added to its environment.
func TunmuxEnv(bin string, env []string, args ...string) Result {
	hasRoot := false
	for _, a := range args {
		hasRoot = hasRoot || a == "--bpffs" || strings.HasPrefix(a, "--bpffs=")
	}
	if !hasRoot {
		panic("testnet.Tunmux without --bpffs: tests must use a root of their own")
	}
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Args: args, Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		r.Code = -1
		r.Stderr += err.Error()
	}
	return r
}

// MustTunmux runs tunmux and fails the test unless it exits 0.
func MustTunmux(t testing.TB, bin string, args ...string) Result {
	t.Helper()
	r := Tunmux(bin, args...)
	if r.Code != 0 {
		t.Fatalf("%s", r)
	}
	return r
}

// MainWithTunmux is a TestMain body for packages that run the binary: as
// root it builds tunmux into *bin, runs the tests and removes the build;
// otherwise it runs the tests, which skip saying they need root.
func MainWithTunmux(m *testing.M, bin *string) int {
	if os.Geteuid() != 0 {
		return m.Run()
	}
	b, cleanup, err := BuildTunmux()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	*bin = b
	return m.Run()
}
