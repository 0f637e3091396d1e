package testnet

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TUNRelay links namespaces na and nb by an L3 point-to-point path: a TUN
// device called name in each (no packet information), addressed ipA and
// ipB (with prefix length), up, and a forwarder in this process copying
// every packet one reads to the other. It stands in for a WireGuard link,
// which this kernel lacks; the devices go when the test ends.
func TUNRelay(t testing.TB, na *Netns, nb *Netns, name, ipA, ipB string) {
	t.Helper()
	fa := openTUN(t, na, name, ipA)
	fb := openTUN(t, nb, name, ipB)
	go relay(fa, fb)
	go relay(fb, fa)
}

// openTUN creates the TUN device name in ns, addresses it ip and brings it
// up; closing the returned file (done at cleanup) removes the device.
func openTUN(t testing.TB, ns *Netns, name, ip string) *os.File {
	t.Helper()
	var f *os.File
	ns.Do(t, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		var req [unix.IFNAMSIZ + 64]byte
		copy(req[:], name)
		*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TUN | unix.IFF_NO_PI
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
			unix.Close(fd)
			return errno
		}
		f = os.NewFile(uintptr(fd), name)
		return nil
	})
	t.Cleanup(func() { f.Close() })
	ns.Run(t, "ip", "addr", "add", ip, "dev", name)
	ns.Run(t, "ip", "link", "set", name, "up")
	ns.WaitUp(t, name)
	return f
}

// relay copies packets from one TUN to the other until a read fails.
func relay(from, to *os.File) {
	buf := make([]byte, 65536)
	for {
		n, err := from.Read(buf)
		if err != nil {
			return
		}
		_, _ = to.Write(buf[:n])
	}
}
