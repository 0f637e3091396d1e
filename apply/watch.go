package apply

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"time"

	"github.com/tunmux/tunmux/maps"
)

// PollInterval is how often Watch looks at the file.
const PollInterval = 200 * time.Millisecond

// Watch applies the file, then again each time its content changes, until
// ctx ends. A file that does not parse or validate changes nothing, so the
// last good state keeps running (warm reconfiguration); report hears of every
// attempt. The lock is taken for each apply only.
func Watch(ctx context.Context, root *maps.Root, path string, opts Options, lockTimeout time.Duration, report func(Result, error)) error {
	var last [sha256.Size]byte
	var lastErr string
	first := true
	ticker := time.NewTicker(PollInterval)
	defer ticker.Stop()
	for {
		data, err := os.ReadFile(path)
		switch {
		case err != nil:
			// A file being replaced may be missing for a moment; report once.
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				report(Result{File: path}, err)
			}
		case first || sha256.Sum256(data) != last:
			first, last, lastErr = false, sha256.Sum256(data), ""
			report(applyData(root, path, data, opts, lockTimeout))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func applyData(root *maps.Root, path string, data []byte, opts Options, lockTimeout time.Duration) (Result, error) {
	doc, err := Parse(path, data)
	if err != nil {
		return Result{File: path}, err
	}
	lock, err := root.Lock(lockTimeout)
	if err != nil {
		return Result{File: path}, err
	}
	defer lock.Release()
	return Apply(root, lock, path, doc, opts)
}

// IsBadFile reports whether err says the file itself is wrong.
func IsBadFile(err error) bool {
	var inv *InvalidFileError
	return errors.As(err, &inv) || errors.Is(err, maps.ErrInvalid)
}
