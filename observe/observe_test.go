package observe

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/progs/encap"
	"github.com/tunmux/tunmux/progs/l2tp"
	"github.com/tunmux/tunmux/progs/mux"
	"github.com/tunmux/tunmux/progs/route"
	"github.com/tunmux/tunmux/progs/xconnect"
)

// header must be struct observe_event as every observed object compiled
// it: the same fields at the same offsets.
func TestHeaderIsObserveEvent(t *testing.T) {
	want := reflect.TypeOf(header{})
	if want.Size() != headerSize {
		t.Fatalf("header is %d bytes, headerSize says %d", want.Size(), headerSize)
	}
	for name, scratch := range map[string]any{
		"encap": encap.EncapObserveObserveScratch{}, "l2tp": l2tp.L2tpObserveObserveScratch{}, "mux": mux.MuxObserveObserveScratch{},
		"route": route.RouteObserveObserveScratch{}, "xconnect": xconnect.XconnectObserveObserveScratch{},
	} {
		ev, ok := reflect.TypeOf(scratch).FieldByName("Ev")
		if !ok {
			t.Fatalf("%s: no Ev in the generated observe_scratch", name)
		}
		got := ev.Type
		if got.Size() != want.Size() {
			t.Errorf("%s: observe_event is %d bytes, header %d", name, got.Size(), want.Size())
		}
		for i := 0; i < want.NumField(); i++ {
			w := want.Field(i)
			g, ok := got.FieldByName(w.Name)
			if !ok || g.Offset != w.Offset || g.Type.Size() != w.Type.Size() {
				t.Errorf("%s: field %s at %d (%d bytes) in header, %v at %d (%d bytes) in observe_event", name, w.Name, w.Offset, w.Type.Size(), ok, g.Offset, g.Type.Size())
			}
		}
	}
}

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

// tunnelled wraps an inner Ethernet frame in Ethernet, IPv4, UDP to port
// and an 8-byte tunnel header with opts 4-byte words of GENEVE options.
func tunnelled(inner []byte, port uint16, opts int) []byte {
	hdr := make([]byte, 14+20+8+8+opts*4)
	copy(hdr, macB)
	copy(hdr[6:], macA)
	binary.BigEndian.PutUint16(hdr[12:], 0x0800)
	ip := hdr[14:]
	ip[0], ip[9] = 0x45, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+8+opts*4+len(inner)))
	copy(ip[12:], []byte{192, 168, 1, 1})
	copy(ip[16:], []byte{192, 168, 1, 2})
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], port)
	udp[8] = byte(opts)
	return append(hdr, inner...)
}

func TestPairMatchesFramesInAndOutOfTunnels(t *testing.T) {
	inner := testnet.ICMPFrame(t, macA, macB, "10.0.0.1", "10.0.0.2", 8)
	inner6 := testnet.ICMPFrame(t, macA, macB, "fd00::1", "fd00::2", 8)
	tagged := append(append(append([]byte{}, inner[:12]...), 0x81, 0, 0x01, 0x2c), inner[12:]...)
	p := Pair{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}
	q := Pair{Src: netip.MustParseAddr("fd00::2"), Dst: netip.MustParseAddr("fd00::1")}
	for _, c := range []struct {
		name  string
		pair  Pair
		frame []byte
		l3    bool
		want  bool
	}{
		{"plain", p, inner, false, true},
		{"VLAN tag", p, tagged, false, true},
		{"VXLAN", p, tunnelled(inner, 4789, 0), false, true},
		{"GENEVE with options", p, tunnelled(inner, 6081, 3), false, true},
		{"no Ethernet header", p, inner[14:], true, true},
		{"IPv6, the other way round", q, inner6, false, true},
		{"other pair", q, inner, false, false},
		{"other UDP port", p, tunnelled(inner, 9999, 0)[:60], false, false},
		{"outer pair only", Pair{Src: netip.MustParseAddr("192.168.1.1"), Dst: netip.MustParseAddr("192.168.1.2")}, tunnelled(inner, 4789, 0), false, true},
		{"truncated", p, inner[:20], false, false},
		{"ARP", p, testnet.ARPFrame(t, macA, "10.0.0.1", "10.0.0.2"), false, false},
	} {
		if got := c.pair.Matches(c.frame, c.l3); got != c.want {
			t.Errorf("%s: Matches = %v, want %v", c.name, got, c.want)
		}
	}
}

// The pcapng file is read by tshark: interface names, comments, both link
// types, lengths, no malformed field.
func TestPcapngReadByTshark(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatalf("tshark is needed to read the pcapng written; run 'make deps': %v", err)
	}
	frame := testnet.ICMPFrame(t, macA, macB, "10.0.0.1", "10.0.0.2", 8)
	now := time.Now()
	file := filepath.Join(t.TempDir(), "t.pcapng")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewPcapngWriter(f, 65535)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Record{
		{Time: now, Dataplane: "encap", Program: "encap", Where: Entry, Iface: "wl0", Length: uint32(len(frame)), Data: frame},
		{Time: now.Add(time.Microsecond), Dataplane: "encap", Program: "encap", Where: Exit, Hook: maps.HookXDP, Iface: "wl0",
			Length: 200, Data: frame[:30], Action: "redirect", Target: "ul0", Outcome: "vxlan"},
		{Time: now, Dataplane: "route", Program: "route_egress_l3", Where: Entry, Iface: "tun0", Length: uint32(len(frame) - 14), Data: frame[14:], L3: true},
	} {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command("tshark", "-r", file, "-T", "fields", "-E", "separator=|", "-e", "frame.interface_name",
		"-e", "frame.comment", "-e", "frame.len", "-e", "frame.cap_len", "-e", "ip.src", "-e", "_ws.malformed").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	want := []string{
		"wl0:encap:entry|encap entry on wl0|60|60|10.0.0.1|",
		"wl0:encap:exit|encap exit redirect->ul0 vxlan|200|30|10.0.0.1|",
		"tun0:route_egress_l3:entry|route_egress_l3 entry on tun0|46|46|10.0.0.1|",
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tshark read:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
