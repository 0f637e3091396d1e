package maps

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/sys/unix"
)

// DefaultRootPath is where tunmux pins its state unless told otherwise.
const DefaultRootPath = "/sys/fs/bpf/tunmux"

// RootEnv names the environment variable that overrides DefaultRootPath.
const RootEnv = "TUNMUX_BPFFS"

// bpffsMount is where the bpffs is mounted when it is missing.
const bpffsMount = "/sys/fs/bpf"

// Pin name prefixes inside a dataplane folder.
const (
	MapPrefix  = "map_"
	ProgPrefix = "prog_"
	LinkPrefix = "link_"
)

// Root is a tunmux bpffs root: a folder on a bpffs with one folder per loaded
// dataplane.
type Root struct {
	Path string
}

// RootPath returns the root path to use: flag if set, else $TUNMUX_BPFFS,
// else DefaultRootPath.
func RootPath(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv(RootEnv); env != "" {
		return env
	}
	return DefaultRootPath
}

// OpenRoot returns the root at path. With create, it mounts the bpffs at
// /sys/fs/bpf when that is not one yet and creates the folder; without it, a
// missing folder is not an error (nothing is loaded there).
func OpenRoot(path string, create bool) (*Root, error) {
	if path == "" || !filepath.IsAbs(path) {
		return nil, Invalid("--bpffs", path, "must be an absolute path on a bpffs", "an absolute path such as "+DefaultRootPath)
	}
	if strings.IndexFunc(path, unicode.IsControl) >= 0 {
		return nil, Invalid("--bpffs", path, "holds a control character (a newline?)", "an absolute path such as "+DefaultRootPath)
	}
	path = hostView(filepath.Clean(path))
	r := &Root{Path: path}
	if !create {
		return r, nil
	}
	if err := ensureBPFFS(path); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("create bpffs root %s: %w", path, err)
	}
	return r, nil
}

// hostView returns the path to use for a root under /sys/fs/bpf. Inside
// `ip netns exec`, which remounts /sys in a private mount namespace and so
// hides the host's bpffs, the host's bpffs is still reachable through the
// root of an ancestor process (the shell that ran the command): tunmux uses
// it there, so that pins outlive the command as they do outside.
func hostView(path string) string {
	if path != bpffsMount && !strings.HasPrefix(path, bpffsMount+"/") || isBPFFS(bpffsMount) {
		return path
	}
	for pid := os.Getppid(); pid > 1; pid = parentOf(pid) {
		root := fmt.Sprintf("/proc/%d/root", pid)
		if isBPFFS(root + bpffsMount) {
			return root + path
		}
	}
	return path
}

// parentOf returns the parent pid of pid, or 0.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// privateMountNS reports whether this process runs in another mount
// namespace than its parent (as under `ip netns exec` or unshare -m).
func privateMountNS() bool {
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	parent, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()))
	return err1 == nil && err2 == nil && self != parent
}

// ensureBPFFS makes sure that path is (or will be created) on a bpffs.
func ensureBPFFS(path string) error {
	existing, ok := OnBPFFS(path)
	if ok {
		return nil
	}
	if path != bpffsMount && !strings.HasPrefix(path, bpffsMount+"/") {
		return fmt.Errorf("bpffs root %s: %s is not on a bpffs; mount one (mount -t bpf bpf DIR) or use a path under %s", path, existing, bpffsMount)
	}
	if err := os.MkdirAll(bpffsMount, 0o755); err != nil {
		return fmt.Errorf("mount bpffs: create %s: %w", bpffsMount, err)
	}
	if isBPFFS(bpffsMount) {
		return nil
	}
	if privateMountNS() {
		return fmt.Errorf("bpffs root %s: this command runs in a private mount namespace (ip netns exec?) without a bpffs at %s, and a bpffs mounted here would vanish, with its pins, when the command exits; run tunmux outside it with --netns NAME, or mount the bpffs on the host first", path, bpffsMount)
	}
	if err := unix.Mount("bpf", bpffsMount, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s (needed for %s): %w; mount it yourself with 'mount -t bpf bpf %s'", bpffsMount, path, err, bpffsMount)
	}
	return nil
}

// OnBPFFS reports whether path is on a bpffs; when path does not exist
// yet, its nearest existing parent is asked (and returned as existing).
func OnBPFFS(path string) (existing string, ok bool) {
	existing = path
	for {
		if _, err := os.Stat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		existing = parent
	}
	return existing, isBPFFS(existing)
}

func isBPFFS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.BPF_FS_MAGIC
}

// Dir returns the folder of a dataplane.
func (r *Root) Dir(dataplane string) string {
	return filepath.Join(r.Path, dataplane)
}

// Exists reports whether the root folder exists.
func (r *Root) Exists() bool {
	st, err := os.Stat(r.Path)
	return err == nil && st.IsDir()
}

// Dataplanes lists the dataplane folders present under the root, sorted.
func (r *Root) Dataplanes() ([]string, error) {
	entries, err := os.ReadDir(r.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read bpffs root: %w", NoPermission(r.Path, err))
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Pins lists the pin names in a dataplane folder that start with prefix.
func (r *Root) Pins(dataplane, prefix string) ([]string, error) {
	entries, err := os.ReadDir(r.Dir(dataplane))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.Dir(dataplane), err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
