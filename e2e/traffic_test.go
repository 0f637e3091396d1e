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

// tcpTransfer sends 8 MiB of random bytes over TCP from namespace from to
// address toIP in namespace to, and checks that exactly those bytes
// arrived. The sockets are opened on threads inside the namespaces.
func tcpTransfer(t *testing.T, from, to *testnet.Netns, toIP string) {
	t.Helper()
	network := "tcp4"
	if netip.MustParseAddr(toIP).Is6() {
		network = "tcp6"
	}
	var ln net.Listener
	to.Do(t, func() error {
		var err error
		ln, err = net.Listen(network, net.JoinHostPort(toIP, "0"))
		return err
	})
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
	var conn net.Conn
	from.Do(t, func() error {
		var err error
		conn, err = net.DialTimeout(network, ln.Addr().String(), 10*time.Second)
		return err
	})
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
	network := "udp4"
	if netip.MustParseAddr(toIP).Is6() {
		network = "udp6"
	}
	var pc net.PacketConn
	to.Do(t, func() error {
		var err error
		pc, err = net.ListenPacket(network, net.JoinHostPort(toIP, "0"))
		return err
	})
	defer pc.Close()
	var conn net.Conn
	from.Do(t, func() error {
		var err error
		conn, err = net.Dial(network, pc.LocalAddr().String())
		return err
	})
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
