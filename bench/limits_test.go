package bench

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/progs/limits"
)

// limitsEnv holds the limit programs (progs/limits), set up to
// redirect to the live bed's out0 as the floor does: the least an encap
// that looks a tunnel up per frame can do, step by step.
type limitsEnv struct {
	objs limits.LimitsObjects
}

// vxlanTemplate is a VXLAN-over-IPv4 header template as limits.c takes it:
// Ethernet, IPv4 (DF, TTL 64, lengths 0, checksum over the rest), UDP to
// 4789 and VXLAN with VNI 100, from the tunnels' outer pair.
func vxlanTemplate() [56]byte {
	var h [56]byte
	copy(h[0:], []byte{2, 0, 0, 0, 0xa, 2, 2, 0, 0, 0, 0xa, 1, 0x08, 0x00})
	ip := h[14:34]
	ip[0], ip[6], ip[8], ip[9] = 0x45, 0x40, 64, 17
	copy(ip[12:], []byte{192, 168, 1, 1, 192, 168, 1, 2})
	binary.BigEndian.PutUint16(ip[10:], testnet.Checksum(ip))
	binary.BigEndian.PutUint16(h[34:], 49152)
	binary.BigEndian.PutUint16(h[36:], 4789)
	h[42] = 0x08
	binary.BigEndian.PutUint32(h[46:], 100<<8)
	return h
}

// newLimitsEnv loads the limit programs for bed e, with one tunnel for the
// frames of frame64(b, 0, 1, 2), and checks that their encap builds a
// well-formed frame: a limit that emitted garbage would measure nothing.
func newLimitsEnv(b *testing.B, e *liveEnv) *limitsEnv {
	l := &limitsEnv{}
	if err := limits.LoadLimitsObjects(&l.objs, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.objs.Close() })
	out := uint32(e.out.Index)
	t := limits.LimitsTmpl{Slot: out, Hdr: vxlanTemplate()}
	frame := frame64(b, 0, 1, 2)
	key := limits.LimitsTmplKey{Src: binary.LittleEndian.Uint32(frame[26:30]), Dst: binary.LittleEndian.Uint32(frame[30:34])}
	zero := uint32(0)
	if err := l.objs.Tunnels4.Put(&key, &t); err != nil {
		b.Fatal(err)
	}
	if err := l.objs.Fixed.Put(&zero, &t); err != nil {
		b.Fatal(err)
	}
	e.ns.Do(b, func() error {
		return l.objs.Devmap.Put(&out, &limits.LimitsBpfDevmapVal{Ifindex: out})
	})
	got, err := runOnce(l.objs.Encap, frame)
	if err != nil {
		b.Fatal(err)
	}
	pkt := gopacket.NewPacket(got, layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	vx, _ := pkt.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
	switch {
	case vx == nil || vx.VNI != 100:
		b.Fatalf("the limit encap built a frame without VXLAN VNI 100 (% x)", got)
	case ip == nil || udp == nil || int(ip.Length) != len(got)-14 || int(udp.Length) != len(got)-34:
		b.Fatalf("the limit encap built wrong lengths (% x)", got)
	case !bytes.Equal(got[50:], frame) || testnet.Checksum(got[14:34]) != 0:
		b.Fatalf("the limit encap built a wrong frame or IPv4 checksum (% x)", got)
	}
	return l
}

// runOnce runs an XDP program once on frame (not live) and returns the
// frame it leaves.
func runOnce(prog *ebpf.Program, frame []byte) ([]byte, error) {
	out := make([]byte, len(frame)+256)
	opts := &ebpf.RunOptions{Data: frame, DataOut: out}
	if _, err := prog.Run(opts); err != nil {
		return nil, err
	}
	return opts.DataOut, nil
}
