package maps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

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
	path = filepath.Clean(path)
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

// ensureBPFFS makes sure that path is (or will be created) on a bpffs.
func ensureBPFFS(path string) error {
	existing := path
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
	if isBPFFS(existing) {
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
	if err := unix.Mount("bpf", bpffsMount, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s (needed for %s): %w; mount it yourself with 'mount -t bpf bpf %s'", bpffsMount, path, err, bpffsMount)
	}
	return nil
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
		return nil, fmt.Errorf("read bpffs root: %w", err)
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
