package bench

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/progs/encap"
)

// observedEncap is encap's observed build, loaded over the live env's maps
// as `tunmux capture` loads it over the pinned ones.
type observedEncap struct {
	coll *ebpf.Collection
}

func newObservedEncap(b *testing.B, e *liveEnv) *observedEncap {
	spec, err := dataplane.EncapDataplane.ObservedSpec()
	if err != nil {
		b.Fatal(err)
	}
	for name := range spec.Programs {
		if name != "encap" {
			delete(spec.Programs, name)
		}
	}
	m := e.objs.EncapMaps
	replace := map[string]*ebpf.Map{"attachments": m.Attachments, "devmap": m.Devmap, "meta": m.Meta, "scratch": m.Scratch,
		"slots": m.Slots, "stats": m.Stats, "tunnel_stats": m.TunnelStats, "tunnels": m.Tunnels, "tunnels4": m.Tunnels4}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: replace})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { coll.Close() })
	return &observedEncap{coll: coll}
}

// configure writes what the observed program is asked for.
func (o *observedEncap) configure(b *testing.B, flags uint32) {
	cfg := dataplane.ObserveConfig{Flags: flags, Snaplen: 128}
	if err := o.coll.Maps["observe_config"].Put(uint32(0), cfg); err != nil {
		b.Fatal(err)
	}
}

// benchObserve measures VXLAN encap in the observed build with nothing
// asked of it (what a link runs while a capture elsewhere observes it) and
// capturing every frame at entry and exit, with a reader draining the perf
// buffers; the plain build (capture off: no capture code at all) is
// encap-vxlan.
func benchObserve(b *testing.B, e *liveEnv) {
	o := newObservedEncap(b, e)
	frame := frame64(b, 0, 1, 2)
	b.Run("encap-vxlan-observed-idle", func(b *testing.B) {
		o.configure(b, 0)
		e.runLive(b, o.coll.Programs["encap"], frame, encap.EncapStatS_ENCAP__VXLAN)
	})
	b.Run("encap-vxlan-capturing", func(b *testing.B) {
		// As tunmux capture reads: woken at an eighth of a buffer.
		rd, err := perf.NewReaderWithOptions(o.coll.Maps["observe_events"], 1<<20, perf.ReaderOptions{Watermark: 1 << 17})
		if err != nil {
			b.Fatal(err)
		}
		var records, lost atomic.Uint64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r, err := rd.Read()
				if errors.Is(err, perf.ErrClosed) {
					return
				}
				if err != nil {
					continue
				}
				if r.LostSamples > 0 {
					lost.Add(r.LostSamples)
				} else {
					records.Add(1)
				}
			}
		}()
		o.configure(b, dataplane.ObserveEntry|dataplane.ObserveExit)
		e.runLive(b, o.coll.Programs["encap"], frame, encap.EncapStatS_ENCAP__VXLAN)
		o.configure(b, 0)
		rd.Close()
		wg.Wait()
		total := float64(records.Load() + lost.Load())
		if total > 0 {
			b.ReportMetric(float64(lost.Load())/total, "lost-share")
		}
		b.ReportMetric(float64(records.Load()), "records")
	})
}
