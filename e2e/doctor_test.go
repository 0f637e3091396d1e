package e2e

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tunmux/tunmux/internal/testnet"
)

// doctorResult is one check of tunmux doctor -o json.
type doctorResult struct {
	Check, Status, Subject, Message, Fix string
}

// doctorRun runs tunmux doctor with the global flags given and returns its
// results and exit code (0 all ok, 1 a check failed).
func doctorRun(t *testing.T, globals []string, flags ...string) ([]doctorResult, int) {
	t.Helper()
	r := testnet.Tunmux(bin, append(append(append([]string{}, globals...), "-o", "json", "doctor"), flags...)...)
	var rep struct {
		OK      bool
		Results []doctorResult
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("doctor -o json: %v\n%s", err, r)
	}
	if (r.Code == 0) != rep.OK || (r.Code != 0 && r.Code != 1) {
		t.Fatalf("doctor exited %d with ok %v:\n%s", r.Code, rep.OK, r)
	}
	return rep.Results, r.Code
}

// failing returns the failed results of check whose subject contains about.
func failing(rs []doctorResult, check, about string) []doctorResult {
	var out []doctorResult
	for _, r := range rs {
		if r.Check == check && r.Status == "fail" && strings.Contains(r.Subject, about) {
			out = append(out, r)
		}
	}
	return out
}

// requireFails requires doctor to fail check about the subject, with a fix
// containing fixHas, and returns that result.
func requireFails(t *testing.T, rs []doctorResult, check, about, fixHas string) doctorResult {
	t.Helper()
	f := failing(rs, check, about)
	if len(f) == 0 {
		t.Fatalf("doctor does not fail %s for %q:\n%+v", check, about, rs)
	}
	if !strings.Contains(f[0].Fix, fixHas) {
		t.Errorf("%s for %q: fix %q, want it to contain %q", check, about, f[0].Fix, fixHas)
	}
	return f[0]
}

// applyFix runs the fix doctor printed, as an operator pasting it would.
func applyFix(t *testing.T, r doctorResult) {
	t.Helper()
	cmd := exec.Command("sh", "-c", r.Fix)
	// tunmux is the binary under test.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("doctor's fix for %s (%s): %v\n%s", r.Check, r.Fix, err, out)
	}
}

// TestDoctorNamesEachBrokenThing breaks, one by one on a GENEVE XDP node,
// what doctor checks, requires doctor to name each with its fix, pastes
// the fix and requires the check to pass again.
func TestDoctorNamesEachBrokenThing(t *testing.T) {
	b := newBed(t)
	for n := 1; n <= 2; n++ {
		b.TunmuxNode(n, "geneve", "--vni", "5001")
	}
	b.ping(1, "10.0.0.2")
	node := b.Args(1)[:2] // --bpffs only: doctor looks at every namespace the root's records name
	rs, code := doctorRun(t, node)
	if code != 0 {
		t.Fatalf("doctor on a healthy node:\n%+v", rs)
	}
	h1, w1, wire := b.ns("h1"), b.ns("w1"), b.ns("wire")

	t.Run("veth-peer and xdp-drops", func(t *testing.T) {
		wire.Run(t, "ethtool", "-K", "n1", "gro", "off")
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // traffic while doctor samples
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
					_, _ = w1.Try("ping", "-c", "1", "-W", "0.2", "10.0.0.2")
				}
			}
		}()
		rs, _ := doctorRun(t, node, "--sample", "2s")
		close(stop)
		<-done
		fix := requireFails(t, rs, "veth-peer", "/ul0", "ethtool -K n1 gro on")
		drops := requireFails(t, rs, "xdp-drops", "/ul0", "ethtool -K n1 gro on")
		if !strings.Contains(drops.Message, "could not be sent") {
			t.Errorf("xdp-drops: %s", drops.Message)
		}
		applyFix(t, fix)
		rs, _ = doctorRun(t, node, "--sample", "0")
		if f := failing(rs, "veth-peer", "/ul0"); len(f) != 0 {
			t.Errorf("after the fix: %+v", f)
		}
		b.ping(1, "10.0.0.2")
	})
	t.Run("tx-checksum", func(t *testing.T) {
		w1.Run(t, "ethtool", "-K", "eth0", "tx", "on")
		rs, _ := doctorRun(t, node, "--sample", "0")
		applyFix(t, requireFails(t, rs, "tx-checksum", "/wl0", "ethtool -K eth0 tx off"))
		if rs, _ := doctorRun(t, node, "--sample", "0"); len(failing(rs, "tx-checksum", "")) != 0 {
			t.Errorf("after the fix: %+v", failing(rs, "tx-checksum", ""))
		}
	})
	t.Run("mtu", func(t *testing.T) {
		w1.Run(t, "ip", "link", "set", "eth0", "mtu", "1500")
		rs, _ := doctorRun(t, node, "--sample", "0")
		applyFix(t, requireFails(t, rs, "mtu", "10.0.0.1->10.0.0.2", "mtu 1450"))
		if rs, _ := doctorRun(t, node, "--sample", "0"); len(failing(rs, "mtu", "")) != 0 {
			t.Errorf("after the fix: %+v", failing(rs, "mtu", ""))
		}
	})
	t.Run("neighbour", func(t *testing.T) {
		// The peer's underlay MAC changes (a new NIC): the kernel learns it,
		// the tunnel still names the old one.
		h1.Run(t, "ip", "neigh", "replace", "192.168.1.2", "lladdr", "02:00:00:00:0a:99", "dev", "ul0", "nud", "permanent")
		t.Cleanup(func() { _, _ = h1.Try("ip", "neigh", "del", "192.168.1.2", "dev", "ul0") })
		rs, _ := doctorRun(t, node, "--sample", "0")
		applyFix(t, requireFails(t, rs, "neighbour", "10.0.0.1->10.0.0.2", "tunnel update --inner-src 10.0.0.1 --inner-dst 10.0.0.2 --dst-mac 02:00:00:00:0a:99"))
		if rs, _ := doctorRun(t, node, "--sample", "0"); len(failing(rs, "neighbour", "")) != 0 {
			t.Errorf("after the fix: %+v", failing(rs, "neighbour", ""))
		}
		h1.Run(t, "ip", "neigh", "del", "192.168.1.2", "dev", "ul0")
		b.Tunmux(1, "tunnel", "update", "--inner-src", "10.0.0.1", "--inner-dst", "10.0.0.2", "--dst-mac", "02:00:00:00:0a:02")
	})
	t.Run("link, xdp-slot and devmap-slot", func(t *testing.T) {
		// wl0 recreated, and another XDP program put on it by hand.
		h1.Run(t, "ip", "link", "del", "wl0")
		h1.Run(t, "ip", "link", "add", "wl0", "type", "veth", "peer", "eth0", "netns", w1.Name)
		w1.Run(t, "ip", "link", "set", "eth0", "address", "02:00:00:00:01:01", "mtu", "1450")
		w1.Run(t, "ip", "addr", "add", "10.0.0.1/24", "dev", "eth0")
		w1.Run(t, "ethtool", "-K", "eth0", "tx", "off")
		w1.Run(t, "ip", "link", "set", "eth0", "up")
		h1.Run(t, "ip", "link", "set", "wl0", "up")
		h1.Run(t, "ip", "link", "set", "dev", "wl0", "xdp", "pinned", filepath.Join(b.Roots[1], "encap", "prog_pass"))
		rs, _ := doctorRun(t, node, "--sample", "0")
		requireFails(t, rs, "link", "encap on", "attach encap wl0")
		slot := requireFails(t, rs, "xdp-slot", "/wl0", "xdp off")
		if !strings.Contains(slot.Message, "(pass)") {
			t.Errorf("xdp-slot does not name the program holding it: %s", slot.Message)
		}
		dm := requireFails(t, rs, "devmap-slot", "/wl0", "apply -f")
		applyFix(t, slot)
		applyFix(t, dm)
		rs, code := doctorRun(t, node, "--sample", "0")
		if code != 0 {
			t.Errorf("after the fixes:\n%+v", failing(rs, "", ""))
		}
		b.ping(1, "10.0.0.2")
	})
}

// TestDoctorRouteAndRootChecks breaks the route dataplane's prerequisites,
// the schema of the pins and the bpffs.
func TestDoctorRouteAndRootChecks(t *testing.T) {
	t.Run("route", func(t *testing.T) {
		c := routeNodes(t, 1, true)[0]
		c.ns.Run(t, "ip", "addr", "add", "10.100.0.1/32", "dev", "vxlan0")
		c.ns.Run(t, "ip", "route", "add", "10.200.0.0/24", "dev", "rt0", "src", "10.100.0.1")
		node := []string{"--bpffs", c.root}
		if rs, code := doctorRun(t, node, "--sample", "0"); code != 0 {
			t.Fatalf("doctor on a healthy route node:\n%+v", failing(rs, "", ""))
		}
		c.ns.Run(t, "ip", "route", "add", "10.201.0.0/24", "dev", "rt0")
		c.ns.Run(t, "sysctl", "-qw", "net.ipv4.conf.vxlan0.rp_filter=1")
		c.ns.Run(t, "ip", "link", "set", "vxlan0", "down")
		rs, _ := doctorRun(t, node, "--sample", "0")
		for _, r := range []doctorResult{
			requireFails(t, rs, "route-src", "10.201.0.0/24", "ip route replace 10.201.0.0/24 dev rt0 src 10.100.0.1"),
			requireFails(t, rs, "rp-filter", "/vxlan0", "rp_filter=0"),
			requireFails(t, rs, "tunnel-dev", "/vxlan0", "ip link set vxlan0 up"),
		} {
			applyFix(t, r)
		}
		if rs, code := doctorRun(t, node, "--sample", "0"); code != 0 {
			t.Errorf("after the fixes:\n%+v", failing(rs, "", ""))
		}
	})
	t.Run("schema", func(t *testing.T) {
		testnet.RequireRoot(t)
		root := testnet.BPFRoot(t, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "encap") })
		testnet.MustTunmux(t, bin, "--bpffs", root, "load", "encap")
		// Pins as an older tunmux (schema 2) left them: its meta record.
		m, err := ebpf.LoadPinnedMap(filepath.Join(root, "encap", "map_meta"), nil)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]byte, m.ValueSize())
		if err := m.Lookup(uint32(0), v); err != nil {
			t.Fatal(err)
		}
		binary.NativeEndian.PutUint32(v, 2)
		if err := m.Put(uint32(0), v); err != nil {
			t.Fatal(err)
		}
		m.Close()
		rs, _ := doctorRun(t, []string{"--bpffs", root}, "--sample", "0")
		applyFix(t, requireFails(t, rs, "schema", "encap", "--bpffs "+root+" load encap"))
		if rs, code := doctorRun(t, []string{"--bpffs", root}, "--sample", "0"); code != 0 {
			t.Errorf("after the fix:\n%+v", failing(rs, "", ""))
		}
	})
	t.Run("loaded-state", func(t *testing.T) {
		testnet.RequireRoot(t)
		root := testnet.BPFRoot(t, func(r string) { testnet.Tunmux(bin, "--bpffs", r, "unload", "encap") })
		testnet.MustTunmux(t, bin, "--bpffs", root, "load", "encap")
		// A map pin removed by hand: the pins and the datapath disagree.
		if err := os.Remove(filepath.Join(root, "encap", "map_tunnels4")); err != nil {
			t.Fatal(err)
		}
		rs, _ := doctorRun(t, []string{"--bpffs", root}, "--sample", "0")
		applyFix(t, requireFails(t, rs, "loaded-state", "encap", "--bpffs "+root+" load encap"))
		if rs, code := doctorRun(t, []string{"--bpffs", root}, "--sample", "0"); code != 0 {
			t.Errorf("after the fix:\n%+v", failing(rs, "", ""))
		}
	})
	t.Run("bpffs", func(t *testing.T) {
		testnet.RequireRoot(t)
		dir := filepath.Join(t.TempDir(), "bpf")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		rs, code := doctorRun(t, []string{"--bpffs", dir})
		if code != 1 {
			t.Fatalf("doctor on a root outside bpffs exited %d", code)
		}
		applyFix(t, requireFails(t, rs, "bpffs", dir, "mount -t bpf bpf "+dir))
		t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
		if rs, code := doctorRun(t, []string{"--bpffs", dir}); code != 0 {
			t.Errorf("after the fix: %+v", rs)
		}
	})
}
