package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tunmux/tunmux/internal/testnet"
)

// pingUntil waits for a first answer from ip in namespace ns (neighbours
// must be resolved across the tunnel first), then needs five more with no
// loss.
func pingUntil(t *testing.T, ns *testnet.Netns, ip string) {
	t.Helper()
	testnet.WaitFor(t, 15*time.Second, "a ping answer from "+ip+" in "+ns.Name, func() bool {
		_, err := ns.Try("ping", "-c", "1", "-W", "1", ip)
		return err == nil
	})
	out, err := ns.Try("ping", "-c", "5", "-i", "0.2", "-W", "2", ip)
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping %s from %s: %v\n%s", ip, ns.Name, err, out)
	}
}

// family returns network ("tcp", "udp") for the address family of ip:
// tcp4, udp6 and so on.
func family(network, ip string) string {
	if netip.MustParseAddr(ip).Is6() {
		return network + "6"
	}
	return network + "4"
}

// inNetns runs open (a listen or a dial) on a thread inside ns and returns
// what it opened, failing the test on an error.
func inNetns[T any](t *testing.T, ns *testnet.Netns, open func() (T, error)) T {
	t.Helper()
	var v T
	ns.Do(t, func() error {
		var err error
		v, err = open()
		return err
	})
	return v
}

// tcpTransfer sends 8 MiB of random bytes over TCP from namespace from to
// address toIP in namespace to, and checks that exactly those bytes
// arrived. The sockets are opened on threads inside the namespaces.
func tcpTransfer(t *testing.T, from, to *testnet.Netns, toIP string) {
	t.Helper()
	network := family("tcp", toIP)
	ln := inNetns(t, to, func() (net.Listener, error) { return net.Listen(network, net.JoinHostPort(toIP, "0")) })
	defer ln.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, conn)
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = n, err
		got <- r
	}()
	data := make([]byte, 8<<20)
	_, _ = rand.Read(data)
	conn := inNetns(t, from, func() (net.Conn, error) { return net.DialTimeout(network, ln.Addr().String(), 10*time.Second) })
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := conn.Write(data); err != nil {
		t.Fatalf("TCP from %s to %s: write: %v", from.Name, toIP, err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	r := <-got
	conn.Close()
	if r.err != nil || r.n != int64(len(data)) || r.sum != sha256.Sum256(data) {
		t.Fatalf("TCP from %s to %s: %d of %d bytes arrived (err %v), same bytes: %v", from.Name, toIP, r.n, len(data), r.err, r.sum == sha256.Sum256(data))
	}
}

// udpSmall sends datagrams of 1, 4 and 12 bytes (inner frames below
// Ethernet's 60-byte minimum) from namespace from to toIP in namespace to,
// and checks that each arrives intact.
func udpSmall(t *testing.T, from, to *testnet.Netns, toIP string) {
	t.Helper()
	network := family("udp", toIP)
	pc := inNetns(t, to, func() (net.PacketConn, error) { return net.ListenPacket(network, net.JoinHostPort(toIP, "0")) })
	defer pc.Close()
	conn := inNetns(t, from, func() (net.Conn, error) { return net.Dial(network, pc.LocalAddr().String()) })
	defer conn.Close()
	buf := make([]byte, 64)
	for _, size := range []int{1, 4, 12} {
		want := []byte("abcdefghijkl")[:size]
		got := false
		// The first datagram may wait for neighbour resolution: resend until one arrives.
		for try := 0; try < 20 && !got; try++ {
			if _, err := conn.Write(want); err != nil {
				t.Fatalf("UDP %d bytes to %s: %v", size, toIP, err)
			}
			_ = pc.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			n, _, err := pc.ReadFrom(buf)
			got = err == nil && string(buf[:n]) == string(want)
		}
		if !got {
			t.Errorf("a %d-byte UDP datagram from %s to %s did not arrive intact", size, from.Name, toIP)
		}
	}
}
