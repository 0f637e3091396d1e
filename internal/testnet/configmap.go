package testnet

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ConfigMap is a folder laid out as kubelet lays out a mounted ConfigMap:
// each file NAME is a symlink to ..data/NAME, and ..data is a symlink to a
// timestamped folder holding this version's files. Update swaps versions
// as kubelet does: a new folder, a ..data_tmp symlink to it renamed over
// ..data (one atomic step), then the old folder removed.
type ConfigMap struct {
	t   testing.TB
	Dir string
	cur string // the folder ..data points at
	n   int
}

// NewConfigMap makes the layout, holding files, in a temporary folder.
func NewConfigMap(t testing.TB, files map[string]string) *ConfigMap {
	t.Helper()
	c := &ConfigMap{t: t, Dir: t.TempDir()}
	c.Update(files)
	return c
}

// Path is where a file of the ConfigMap is read: DIR/NAME.
func (c *ConfigMap) Path(name string) string { return filepath.Join(c.Dir, name) }

// Update makes files the ConfigMap's content, in kubelet's steps.
func (c *ConfigMap) Update(files map[string]string) {
	c.t.Helper()
	c.n++
	// kubelet names the folder ..YYYY_MM_DD_HH_MM_SS.NNNN; the count
	// keeps two updates in one second apart.
	next := fmt.Sprintf("..%s.%04d", time.Now().UTC().Format("2006_01_02_15_04_05"), c.n)
	must := func(err error) {
		if err != nil {
			c.t.Fatalf("configmap update: %v", err)
		}
	}
	must(os.Mkdir(filepath.Join(c.Dir, next), 0o755))
	for name, content := range files {
		must(os.WriteFile(filepath.Join(c.Dir, next, name), []byte(content), 0o644))
	}
	tmp := filepath.Join(c.Dir, "..data_tmp")
	must(os.Symlink(next, tmp))
	must(os.Rename(tmp, filepath.Join(c.Dir, "..data")))
	for name := range files {
		link := filepath.Join(c.Dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			must(os.Symlink(filepath.Join("..data", name), link))
		}
	}
	if c.cur != "" {
		must(os.RemoveAll(filepath.Join(c.Dir, c.cur)))
	}
	c.cur = next
}
