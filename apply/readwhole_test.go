package apply

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// readWhole gives the file's bytes, small or large (read into populated
// anonymous memory), as a copy: changing the file afterwards changes
// nothing read.
func TestReadWholeCopiesTheFile(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 10, mapAtLeast - 1, mapAtLeast, mapAtLeast + 4097} {
		want := bytes.Repeat([]byte("encap: {}\n"), size/10+1)[:size]
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readWhole(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: read %d, %v", size, len(got), err)
		}
		if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%d bytes: what was read changed with the file", size)
		}
	}
	if _, err := readWhole(filepath.Join(dir, "absent")); !os.IsNotExist(err) {
		t.Errorf("absent file: %v", err)
	}
}
