package encap_test

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/progs/encap"
)

// TestJumboFramesAtXDP: BPF_PROG_TEST_RUN hands a 9000-byte frame to the
// XDP programs as a multi-buffer frame, of which a program without frags
// support reads only the first buffer (about 3.5 KiB). A frame whose outer
// lengths run past that buffer is malformed to decap; one whose lengths
// fit it, and any the UDP tunnels would encapsulate, pass untouched as
// malformed too: never encapsulated with lengths that count the first
// buffer only, nor decapsulated with a trim that cuts the wrong buffer. A
// VLAN tag goes in front of the first buffer, right whatever follows. (The
// TC test run refuses skbs beyond a page, EINVAL: no jumbo test there.)
func TestJumboFramesAtXDP(t *testing.T) {
	e := newEnv(t)
	e.protocolTunnels(200)
	// An underlay that would carry the encapsulated jumbo frame.
	e.ns.Run(t, "ip", "link", "set", "ul0", "mtu", "9100")
	const size = 9000
	jumboInner := icmpFrame(t, "10.0.0.2", "10.0.0.1", size-14-20-8-50)
	// The datagram ends in the first buffer; trailing bytes fill the others.
	short := udpTunnel(t, outerOpts{dport: 4789}, vxlanHdr(100), icmpFrame(t, "10.0.0.2", "10.0.0.1", 56))
	shortInFirst := append(append([]byte(nil), short...), make([]byte, size-len(short))...)
	for _, c := range []struct {
		name  string
		prog  *ebpf.Program
		frame []byte
		want  encap.EncapStat
	}{
		{"encap over VXLAN", e.objs.Encap, icmpFrame(t, "10.0.0.1", "10.0.0.2", size-14-28), encap.EncapStatS_ENCAP__PASS_MALFORMED},
		{"encap over GENEVE", e.objs.Encap, icmpFrame(t, "10.0.1.1", "10.0.1.2", size-14-28), encap.EncapStatS_ENCAP__PASS_MALFORMED},
		{"decap, IP length past the first buffer", e.objs.Decap, udpTunnel(t, outerOpts{dport: 4789}, vxlanHdr(100), jumboInner), encap.EncapStatS_DECAP__PASS_MALFORMED},
		{"decap, datagram in the first buffer", e.objs.Decap, shortInFirst, encap.EncapStatS_DECAP__PASS_MALFORMED},
	} {
		t.Run(c.name, func(t *testing.T) {
			if len(c.frame) != size {
				t.Fatalf("test frame of %d bytes, want %d", len(c.frame), size)
			}
			e.t = t
			e.expectPassAs(c.prog, c.frame, c.want, testnet.XDPPass)
		})
	}
	t.Run("encap over VLAN", func(t *testing.T) {
		e.t = t
		frame := icmpFrame(t, "10.0.2.1", "10.0.2.2", size-14-28)
		if out := e.redirect(t, e.objs.Encap, frame, encap.EncapStatS_ENCAP__VLAN); !bytes.Equal(out, vlanTag(frame, 0x8100, 300)) {
			t.Errorf("tagged jumbo frame of %d bytes is not the frame with a tag in front", len(out))
		}
	})
}
