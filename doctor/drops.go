package doctor

import (
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tunmux/tunmux/progs/xdpwatch"
)

// Kinds of drop xdpwatch counts (enum drop_kind in xdpwatch.c).
const (
	kindXmitDrop    = 1
	kindRedirectErr = 2
)

// xdpDrops counts, for Sample, the frames the kernel dropped after XDP
// redirected them, and fails each watched interface that lost some.
func (d *doc) xdpDrops() {
	var objs xdpwatch.XdpwatchObjects
	if err := xdpwatch.LoadXdpwatchObjects(&objs, nil); err != nil {
		d.fail(CheckXDPDrops, "kernel", fmt.Sprintf("cannot count the kernel's XDP drops: %v", err), "")
		return
	}
	defer objs.Close()
	var links []link.Link
	defer func() {
		for _, l := range links {
			l.Close()
		}
	}()
	for _, p := range []*ebpf.Program{objs.DevmapXmit, objs.RedirectErr} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			d.fail(CheckXDPDrops, "kernel", fmt.Sprintf("cannot attach to the xdp tracepoints: %v", err), "")
			return
		}
		links = append(links, l)
	}
	time.Sleep(d.o.Sample)
	counts := map[[2]uint64][2]xdpwatch.XdpwatchDropCount{}
	var k xdpwatch.XdpwatchDropKey
	var v xdpwatch.XdpwatchDropCount
	it := objs.Drops.Iterate()
	for it.Next(&k, &v) {
		key := [2]uint64{k.Netns, uint64(k.Ifindex)}
		c := counts[key]
		if k.Kind == kindXmitDrop || k.Kind == kindRedirectErr {
			c[k.Kind-1] = v
		}
		counts[key] = c
	}
	for _, w := range d.watch {
		c := counts[[2]uint64{w.netns, uint64(w.ifindex)}]
		if c[0].Frames == 0 && c[1].Frames == 0 {
			d.ok(CheckXDPDrops, w.name, fmt.Sprintf("no frame redirected to or from it dropped by the kernel in %s", d.o.Sample))
			continue
		}
		var what []string
		if c[0].Frames > 0 {
			what = append(what, fmt.Sprintf("%d frames redirected to it could not be sent (%s)", c[0].Frames, errName(c[0].Err)))
		}
		if c[1].Frames > 0 {
			what = append(what, fmt.Sprintf("%d redirects from it failed (%s)", c[1].Frames, errName(c[1].Err)))
		}
		fix := w.fix
		if fix == "" {
			fix = "tunmux monitor --drops"
		}
		d.fail(CheckXDPDrops, w.name, fmt.Sprintf("in %s the kernel dropped frames after XDP redirected them, which no program counter shows: %s", d.o.Sample, strings.Join(what, "; ")), fix)
	}
}

// errName names a negative errno.
func errName(err int64) string {
	if err == 0 {
		return "no error code"
	}
	if err < 0 {
		err = -err
	}
	return syscall.Errno(err).Error()
}

// progName names a program by id, "" when it cannot be opened.
func progName(id uint32) string {
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		return "?"
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return "?"
	}
	return info.Name
}
