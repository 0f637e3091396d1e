package apply

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// errWriting means that the file changed while it was being read.
var errWriting = errors.New("the file changed while it was read")

// fileKey tells versions of the file apart: the same bytes written again,
// or written under another inode, are another version.
type fileKey struct {
	dev, ino uint64
	size     int64
	mtime    int64 // nanoseconds
	sum      [sha256.Size]byte
}

// fileState is what Watch knows of the file between polls.
type fileState struct {
	dev, ino uint64    // the file's at the last poll (0: none yet)
	seen     fileKey   // the version seen at the last poll
	since    time.Time // when that version was first seen
	readErr  string    // the last error of reading, reported once
	cand     *content  // the parsed version waiting to settle
}

// next reads the file and returns the content to apply now, if any: a
// version other than current that has stayed the same for settle, or that
// came under a new inode (renamed into place: complete) and parses. A
// writer rewriting the file in place changes its size, modification time or
// bytes between polls, so what it has half written never settles.
func (f *fileState) next(path string, now time.Time, settle time.Duration, sel Selector, current *content, report func(Event)) (*content, bool) {
	data, key, err := readStable(path)
	if err != nil {
		f.seen = fileKey{}
		if errors.Is(err, errWriting) {
			return nil, false
		}
		// A file being replaced may be missing for a moment; report once.
		if msg := err.Error(); msg != f.readErr {
			f.readErr = msg
			report(Event{Result: Result{File: path}, Err: err})
		}
		return nil, false
	}
	f.readErr = ""
	renamed := f.ino != 0 && (key.ino != f.ino || key.dev != f.dev)
	f.dev, f.ino = key.dev, key.ino
	if key != f.seen {
		f.seen, f.since = key, now
	}
	if current != nil && key.sum == current.sum {
		f.cand = nil
		return nil, false
	}
	settled := now.Sub(f.since) >= settle
	if !settled && !renamed {
		return nil, false
	}
	if f.cand == nil || f.cand.sum != key.sum {
		f.cand = parseContent(path, data, key.sum, sel)
	}
	if !settled && !f.cand.parses() {
		return nil, false
	}
	c := f.cand
	f.cand = nil
	return c, true
}

// readStable reads the file whole, and fails with errWriting if its size or
// modification time changed meanwhile.
func readStable(path string) ([]byte, fileKey, error) {
	var key fileKey
	if err := checkReadable(path); err != nil {
		return nil, key, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, key, err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, key, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, key, fmt.Errorf("read %s: %w", path, err)
	}
	after, err := f.Stat()
	if err != nil {
		return nil, key, err
	}
	if before.Size() != after.Size() || !before.ModTime().Equal(after.ModTime()) || int64(len(data)) != after.Size() {
		return nil, key, errWriting
	}
	key.size, key.mtime, key.sum = after.Size(), after.ModTime().UnixNano(), sha256.Sum256(data)
	if st, ok := after.Sys().(*syscall.Stat_t); ok {
		key.dev, key.ino = uint64(st.Dev), st.Ino
	}
	return data, key, nil
}

// parseContent parses one version of the file.
func parseContent(path string, data []byte, sum [sha256.Size]byte, sel Selector) *content {
	doc, err := ParseFor(path, data, sel)
	c := &content{sum: sum, doc: doc, err: err}
	if err == nil {
		c.names = interfaceNames(doc)
	}
	return c
}

// interfaceNames returns the interfaces a document names, whose link events
// may call for a repair; nil when any interface may matter (routes resolve
// tunnel devices that the file does not name).
func interfaceNames(doc *Document) map[string]bool {
	if doc.Route != nil {
		return nil
	}
	names := map[string]bool{}
	if doc.Encap != nil {
		for _, e := range doc.Encap.Tunnels {
			names[e.Args.Underlay], names[e.Args.Overlay] = true, true
		}
		for _, e := range doc.Encap.Devmap {
			names[e.Args.In], names[e.Args.Out] = true, true
		}
	}
	if doc.Xconnect != nil {
		for _, e := range doc.Xconnect.Pairs {
			names[e.Args.A], names[e.Args.B] = true, true
		}
	}
	if doc.L2TP != nil {
		for _, e := range doc.L2TP.Sessions {
			names[e.Args.EthIface], names[e.Args.TunnelIface] = true, true
		}
	}
	return names
}
