package dataplane

import (
	"errors"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/progs/encap"
)

// TestLoadMigratesEncapSchema2: a root laid out as schema 2 kept (every
// tunnel in tunnels, no tunnels4) is refused by every command but load,
// which moves its IPv4 tunnels into tunnels4 in place and keeps the rest:
// the tunnels read back as before, counters and all.
func TestLoadMigratesEncapSchema2(t *testing.T) {
	testnet.RequireRoot(t)
	root, lock := loadedRoot(t, EncapDataplane, 64)
	l, err := Open(root, EncapDataplane)
	if err != nil {
		t.Fatal(err)
	}
	st, err := maps.NewEncapState(l.Maps)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []maps.TunnelArgs{
		{InnerSrc: "10.0.0.1", InnerDst: "10.0.0.2", Proto: "vxlan", VNI: "5", OuterSrc: "192.0.2.1", OuterDst: "192.0.2.2", DstMAC: "02:00:00:00:00:02", Underlay: "ul0", Overlay: "wl0"},
		{InnerSrc: "10.0.1.1", InnerDst: "10.0.1.2", Proto: "vlan", VlanID: "7", Underlay: "ul0", Overlay: "wl0"},
		{InnerSrc: "fd00::1", InnerDst: "fd00::2", Proto: "geneve", VNI: "9", OuterSrc: "2001:db8::1", OuterDst: "2001:db8::2", DstMAC: "02:00:00:00:00:02", Underlay: "ul0", Overlay: "wl0"},
	} {
		tn, err := a.Parse(nil)
		if err != nil {
			t.Fatal(err)
		}
		// No such interface: bpf_check_mtu fails, and encap drops the
		// frame as too big, which it does only for a tunnel it found.
		tn.UnderlayIndex, tn.OverlayIndex = 999999, 999998
		if err := st.PutTunnel(lock, tn, maps.Add); err != nil {
			t.Fatal(err)
		}
	}
	before, err := st.ListTunnels()
	if err != nil || len(before) != 3 {
		t.Fatalf("tunnels before: %d, %v", len(before), err)
	}

	// Lay the root out as schema 2: IPv4 tunnels back in tunnels, no tunnels4.
	v4 := l.Maps["tunnels4"]
	var (
		k4 encap.EncapTunnelKey4
		v  encap.EncapTunnel
	)
	for it := v4.Iterate(); it.Next(&k4, &v); {
		k := encap.EncapTunnelKey{Family: 4}
		copy(k.InnerSrc[:], k4.InnerSrc[:])
		copy(k.InnerDst[:], k4.InnerDst[:])
		if err := l.Maps["tunnels"].Put(&k, &v); err != nil {
			t.Fatal(err)
		}
	}
	meta := l.Meta
	meta.Schema = 2
	if err := maps.WriteMeta(lock, l.Maps["meta"], meta); err != nil {
		t.Fatal(err)
	}
	// Schema 2's own programs (the object of the last schema 2 build) take
	// the program pins, over the pinned maps.
	old, err := ebpf.LoadCollectionSpec("testdata/encap_schema2_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	replace := map[string]*ebpf.Map{}
	for name, ms := range old.Maps {
		if m := l.Maps[name]; m != nil {
			ms.MaxEntries = m.MaxEntries()
			replace[name] = m
		}
	}
	oldColl, err := ebpf.NewCollectionWithOptions(old, ebpf.CollectionOptions{MapReplacements: replace})
	if err != nil {
		t.Fatal(err)
	}
	defer oldColl.Close()
	dir := root.Dir("encap")
	for _, p := range EncapDataplane.Programs {
		if err := os.Remove(maps.ProgPin(dir, p.Name)); err != nil {
			t.Fatal(err)
		}
		if err := oldColl.Programs[p.object()].Pin(maps.ProgPin(dir, p.Name)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if err := os.Remove(maps.MapPin(dir, "tunnels4")); err != nil {
		t.Fatal(err)
	}
	if got := runEncap(t, dir); got != 1 {
		t.Errorf("schema 2's encap on a frame of 10.0.0.1->10.0.0.2: verdict %d, want 1 (XDP_DROP, its underlay cannot carry it)", got)
	}

	if _, err := Open(root, EncapDataplane); !errors.Is(err, maps.ErrIncompatible) || !strings.Contains(err.Error(), "run 'tunmux load encap' to migrate") {
		t.Errorf("Open of a schema 2 root: %v; want incompatible, with the load that migrates", err)
	}
	res, err := Load(lock, EncapDataplane, LoadOptions{Version: "test"})
	if err != nil || res.MigratedFrom != 2 || !reflect.DeepEqual(res.Created, []string{"map_tunnels4"}) || res.MaxEntries != 64 || !reflect.DeepEqual(res.Upgraded, []string{"encap", "decap", "encap-tc", "decap-tc"}) {
		t.Fatalf("migrating load: %+v, %v", res, err)
	}
	// This build's encap finds the tunnel in tunnels4.
	if got := runEncap(t, dir); got != 1 {
		t.Errorf("encap after the migration on a frame of 10.0.0.1->10.0.0.2: verdict %d, want 1 (XDP_DROP, its underlay cannot carry it)", got)
	}
	l, err = Open(root, EncapDataplane)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Meta.Schema != maps.EncapSchema {
		t.Errorf("schema after the migration: %d", l.Meta.Schema)
	}
	st, err = maps.NewEncapState(l.Maps)
	if err != nil {
		t.Fatal(err)
	}
	after, err := st.ListTunnels()
	if err != nil || !reflect.DeepEqual(after, before) {
		t.Errorf("tunnels after the migration:\n%+v\nbefore:\n%+v (%v)", after, before, err)
	}
	if n := testnet.MapEntries(t, l.Maps["tunnels"]); n != 1 {
		t.Errorf("tunnels holds %d entries after the migration, want the IPv6 one", n)
	}
	if n := testnet.MapEntries(t, l.Maps["tunnels4"]); n != 2 {
		t.Errorf("tunnels4 holds %d entries after the migration, want the two IPv4 ones", n)
	}
	if res, err := Load(lock, EncapDataplane, LoadOptions{}); err != nil || res.Changed() {
		t.Errorf("load after the migration: %+v, %v; want nothing changed", res, err)
	}
}

// runEncap runs the pinned encap program once on an ICMP frame 10.0.0.1 ->
// 10.0.0.2 and returns its verdict.
func runEncap(t *testing.T, dir string) uint32 {
	t.Helper()
	prog, err := ebpf.LoadPinnedProgram(maps.ProgPin(dir, "encap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	frame := testnet.ICMPFrame(t, mac, mac, "10.0.0.1", "10.0.0.2", 18)
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatal(err)
	}
	return ret
}
