package maps

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/tunmux/tunmux/progs/encap"
)

// CopyIPv4Tunnels is the first step of the encap migration from schema 2:
// it copies the tunnels of IPv4 inner pairs from tunnels, where schema 2
// kept every tunnel, into tunnels4 (replacing what a load cut short left
// there). The schema 2 programs go on reading tunnels meanwhile.
func CopyIPv4Tunnels(ms map[string]*ebpf.Map) error {
	old, v4 := ms["tunnels"], ms["tunnels4"]
	if old == nil || v4 == nil {
		return fmt.Errorf("copy IPv4 tunnels: tunnels and tunnels4 maps are required: %w", ErrNotLoaded)
	}
	var b tunnelBatch[encap.EncapTunnelKey4]
	err := eachEntry(old, func(k encap.EncapTunnelKey, v encap.EncapTunnel) {
		if k.Family == 4 {
			b.add(key4(k), v)
		}
	})
	if err != nil {
		return fmt.Errorf("read tunnels: %w", err)
	}
	if err := b.put(v4); err != nil {
		return fmt.Errorf("copy %d IPv4 tunnels into tunnels4: %w", len(b.keys), err)
	}
	return nil
}

// DropIPv4FromTunnels is the second step, once the programs read tunnels4:
// it deletes the tunnels of IPv4 inner pairs from tunnels.
func DropIPv4FromTunnels(ms map[string]*ebpf.Map) error {
	old := ms["tunnels"]
	if old == nil {
		return fmt.Errorf("drop IPv4 tunnels: the tunnels map is required: %w", ErrNotLoaded)
	}
	var keys []encap.EncapTunnelKey
	err := eachEntry(old, func(k encap.EncapTunnelKey, _ encap.EncapTunnel) {
		if k.Family == 4 {
			keys = append(keys, k)
		}
	})
	if err != nil {
		return fmt.Errorf("read tunnels: %w", err)
	}
	if err := batchDelete(old, keys); err != nil {
		return fmt.Errorf("delete %d IPv4 tunnels from tunnels: %w", len(keys), err)
	}
	return nil
}
