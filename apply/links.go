package apply

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tunmux/tunmux/netdev"
)

// linkFilter holds the interfaces whose link events call for a reconcile;
// it is set by the watch loop and read by the goroutine of the events.
type linkFilter struct {
	names atomic.Pointer[map[string]bool] // nil: every interface
}

// set makes the filter the interfaces of the contents given.
func (l *linkFilter) set(cs ...*content) {
	names := map[string]bool{}
	for _, c := range cs {
		if c == nil || c.err != nil {
			continue
		}
		if c.names == nil {
			l.names.Store(nil)
			return
		}
		for n := range c.names {
			names[n] = true
		}
	}
	l.names.Store(&names)
}

// concerns reports whether an event of the interface calls for a reconcile.
func (l *linkFilter) concerns(name string) bool {
	p := l.names.Load()
	return p == nil || (*p)[name]
}

// resubscribeDelay is how long watchLinks waits before it subscribes again.
const resubscribeDelay = time.Second

// watchLinks subscribes to the link events of the apply's namespace (the
// socket is made inside it, and stays bound to it) and sends on kick for
// each event of an interface that the file names, until ctx ends. When the
// subscription ends (the socket overflowed, say) it kicks, since events may
// have been lost, reports why on errs and subscribes again.
func (w *watcher) watchLinks(ctx context.Context, kick chan<- struct{}, errs chan<- error) {
	where := "this network namespace"
	if w.opts.Netns != "" {
		where = "network namespace " + w.opts.Netns
	}
	var lastErr string
	for {
		updates := make(chan netlink.LinkUpdate, 1024)
		done := make(chan struct{})
		var (
			mu     sync.Mutex
			failed error
		)
		err := netdev.Do(w.opts.Netns, func() error {
			return netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
				ErrorCallback: func(err error) {
					mu.Lock()
					failed = err
					mu.Unlock()
				},
				ReceiveBufferSize: 1 << 20,
			})
		})
		if err == nil {
			w.relayLinks(ctx, updates, kick)
			close(done)
			if ctx.Err() != nil {
				return
			}
			poke(kick)
			mu.Lock()
			err = failed
			mu.Unlock()
			if err == nil {
				err = errors.New("the subscription ended")
			}
		}
		err = fmt.Errorf("link events of %s: %w; subscribing again", where, err)
		if msg := err.Error(); msg != lastErr {
			lastErr = msg
			select {
			case errs <- err:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(resubscribeDelay):
		}
	}
}

// relayLinks kicks for the events that concern the file, until the
// subscription or ctx ends.
func (w *watcher) relayLinks(ctx context.Context, updates <-chan netlink.LinkUpdate, kick chan<- struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-updates:
			if !ok {
				return
			}
			if u.Link != nil && w.linkNames.concerns(u.Link.Attrs().Name) {
				poke(kick)
			}
		}
	}
}

// poke sends on a channel of one without waiting: a kick already pending
// stands for this one too.
func poke(kick chan<- struct{}) {
	select {
	case kick <- struct{}{}:
	default:
	}
}
