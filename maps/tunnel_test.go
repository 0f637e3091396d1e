package maps

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func vxlanArgs() TunnelArgs {
	return TunnelArgs{
		InnerSrc: "10.0.0.1", InnerDst: "10.0.0.2", Proto: "vxlan", VNI: "100",
		OuterSrc: "192.168.1.1", OuterDst: "192.168.1.2", DstMAC: "02:00:00:00:00:02",
		Underlay: "eth0", Overlay: "wl0",
	}
}

func TestParseTunnel(t *testing.T) {
	tn, err := vxlanArgs().Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if tn.Proto != ProtoVXLAN || tn.VNI != 100 || tn.OuterDst != netip.MustParseAddr("192.168.1.2") ||
		tn.DstMAC.String() != "02:00:00:00:00:02" || tn.SrcMAC != nil || tn.SrcPort != 0 {
		t.Errorf("parsed %+v", tn)
	}
	// The kernel value round-trips.
	tn.UnderlayIndex, tn.OverlayIndex, tn.SrcPort = 3, 4, 4789
	tn.SrcMAC = tn.DstMAC
	back := tunnelFromKernel(tn.kernelKey(), tn.kernelValue())
	back.Underlay, back.Overlay = tn.Underlay, tn.Overlay
	b1, _ := back.MarshalJSON()
	b2, _ := tn.MarshalJSON()
	if string(b1) != string(b2) {
		t.Errorf("round trip through the kernel value:\n%s\n%s", b1, b2)
	}
	if got := back.JSON(); *got.VNI != 100 || *got.SrcPort != 4789 || *got.OuterSrc != "192.168.1.1" || got.VlanID != nil {
		t.Errorf("JSON after round trip: %+v", got)
	}
}

func TestParseTunnelReportsEveryProblem(t *testing.T) {
	a := vxlanArgs()
	a.VNI, a.DstMAC, a.Underlay = "x", "y", "a/b"
	_, err := a.Parse(nil)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
	for _, flag := range []string{"--vni", "--dst-mac", "--underlay"} {
		if !strings.Contains(err.Error(), flag) {
			t.Errorf("%v does not name %s", err, flag)
		}
	}
	if n := len(Flatten(err)); n != 3 {
		t.Errorf("%d problems reported, want 3: %v", n, err)
	}
}

func TestUpdateMergesAndClears(t *testing.T) {
	base, err := vxlanArgs().Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Only the VNI changes.
	tn, err := TunnelArgs{InnerSrc: "10.0.0.1", InnerDst: "10.0.0.2", VNI: "7"}.Parse(&base)
	if err != nil || tn.VNI != 7 || tn.OuterSrc != base.OuterSrc || tn.Underlay != "eth0" {
		t.Errorf("update VNI: %+v, %v", tn, err)
	}
	// To VLAN: the outer fields go.
	tn, err = TunnelArgs{InnerSrc: "10.0.0.1", InnerDst: "10.0.0.2", Proto: "vlan", VlanID: "9"}.Parse(&base)
	if err != nil || tn.VlanID != 9 || tn.OuterSrc.IsValid() || tn.DstMAC != nil || tn.VNI != 0 {
		t.Errorf("update to vlan: %+v, %v", tn, err)
	}
	// From VLAN back to VXLAN, the outer fields are required again.
	_, err = TunnelArgs{InnerSrc: "10.0.0.1", InnerDst: "10.0.0.2", Proto: "vxlan"}.Parse(&tn)
	for _, flag := range []string{"--vni", "--outer-src", "--outer-dst", "--dst-mac"} {
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("switching from vlan without %s: %v", flag, err)
		}
	}
	// FormErrors keeps malformed flags and drops missing ones.
	if err := (TunnelArgs{InnerSrc: "10.0.0.1", InnerDst: "10.0.0.2", VNI: "5"}).FormErrors(); err != nil {
		t.Errorf("well-formed partial flags: %v", err)
	}
	if err := (TunnelArgs{InnerSrc: "10.0.0.1", InnerDst: "10.0.0.2", VNI: "x"}).FormErrors(); err == nil || !strings.Contains(err.Error(), "--vni") {
		t.Errorf("malformed --vni: %v", err)
	}
}

func TestInvalidErrorText(t *testing.T) {
	err := Invalid("--vni", "abc", "is not a decimal number", "0..16777215")
	want := `--vni "abc": is not a decimal number (accepted: 0..16777215)`
	if err.Error() != want {
		t.Errorf("%q, want %q", err.Error(), want)
	}
}

func TestReadinessJSONRoundTrip(t *testing.T) {
	for _, r := range []Readiness{ReadyUnknown, ReadyNotVeth, ReadyGRO, ReadyPeerXDP, NotReady} {
		text, _ := r.MarshalText()
		var back Readiness
		if err := back.UnmarshalText(text); err != nil || back != r {
			t.Errorf("%v -> %s -> %v (%v)", r, text, back, err)
		}
	}
}
