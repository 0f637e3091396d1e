package doctor

import (
	"strings"
	"testing"

	"github.com/tunmux/tunmux/maps"
)

// A root outside any bpffs fails the first check, with the mount that
// fixes it, and no other check runs on it.
func TestRootOutsideBPFFS(t *testing.T) {
	dir := t.TempDir()
	rep := Run(Options{Root: &maps.Root{Path: dir}})
	if rep.OK || rep.Failed != 1 || len(rep.Results) != 1 {
		t.Fatalf("report: %+v", rep)
	}
	r := rep.Results[0]
	if r.Check != CheckBPFFS || r.Fix != "mount -t bpf bpf "+dir || !strings.Contains(r.Message, "not on a bpffs") {
		t.Errorf("result: %+v", r)
	}
}

func TestFixesNameTheRightPlaces(t *testing.T) {
	for path, want := range map[string]string{
		"/sys/fs/bpf/tunmux": "/sys/fs/bpf", "/sys/fs/bpf/x/y": "/sys/fs/bpf", "/srv/bpf": "/srv/bpf",
	} {
		if got := mountPointFor(path); got != want {
			t.Errorf("mountPointFor(%s) = %s, want %s", path, got, want)
		}
	}
	d := &doc{o: Options{Flags: "--bpffs /sys/fs/bpf/n1"}}
	if got := d.tunmux("node1", "attach encap wl0"); got != "tunmux --bpffs /sys/fs/bpf/n1 --netns node1 attach encap wl0" {
		t.Errorf("tunmux command: %s", got)
	}
	if got := inNetnsCmd("", "ip link set x up"); got != "ip link set x up" {
		t.Errorf("inNetnsCmd here: %s", got)
	}
	if got := errName(-95); got != "operation not supported" {
		t.Errorf("errName(-95) = %s", got)
	}
}
