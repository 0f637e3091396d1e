package testnet

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Inject sends frame, a whole Ethernet frame, out of interface ifname in
// namespace ns through a packet socket: it crosses the interface's TC
// egress, and a veth peer's TC ingress. Unlike a BPF_PROG_TEST_RUN, which
// refuses an skb whose first IP header is cut short, it delivers frames of
// any length from an Ethernet header up. It returns what sending returned:
// ENOBUFS when the frame was dropped on the way out (TC_ACT_SHOT at the
// interface's egress); a failure to send at all fails the test.
func Inject(t testing.TB, ns *Netns, ifname string, frame []byte) error {
	t.Helper()
	var sent error
	ns.Do(t, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // 0: receives nothing
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// The frame's ethertype, in network order as the address wants it.
		proto := binary.BigEndian.Uint16(frame[12:])
		sent = unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: proto<<8 | proto>>8})
		return nil
	})
	return sent
}

// CountersMoved waits until a counter of stats has moved from before (a
// frame crossing a real interface is counted when the kernel gets to it),
// then checks that counter want, and no other, moved by exactly one.
func CountersMoved(t testing.TB, stats *ebpf.Map, before []uint64, want int, name func(int) string) {
	t.Helper()
	WaitFor(t, 5*time.Second, "a counter to move (want "+name(want)+")", func() bool {
		after := Counters(t, stats)
		for i := range after {
			if after[i] != before[i] {
				return true
			}
		}
		return false
	})
	OneCounterMoved(t, before, Counters(t, stats), want, name)
}

// AttachTCX attaches prog to the TCX hook attach (ebpf.AttachTCXIngress or
// ebpf.AttachTCXEgress) of interface ifname in namespace ns, until the test
// ends.
func AttachTCX(t testing.TB, ns *Netns, prog *ebpf.Program, ifname string, attach ebpf.AttachType) {
	t.Helper()
	ns.Do(t, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		l, err := link.AttachTCX(link.TCXOptions{Program: prog, Interface: ifc.Index, Attach: attach})
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		return nil
	})
}

// SkipIfTestRunRefuses skips t if the kernel refuses to build a test-run
// skb of frame for prog (EINVAL: its first IP header is cut short), run in
// namespace ns with context ctx (nil for none).
func SkipIfTestRunRefuses(t testing.TB, ns *Netns, prog *ebpf.Program, frame []byte, ctx any) {
	t.Helper()
	var err error
	ns.Do(t, func() error {
		_, err = prog.Run(&ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+512), Context: ctx})
		return nil
	})
	if errors.Is(err, unix.EINVAL) {
		t.Skip("the kernel's test run refuses this skb (EINVAL: its first IP header is cut short)")
	}
}
