package dataplane

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tunmux/tunmux/internal/testnet"
)

// A code variant (what tests build to stand for a newer build) loads, and
// every program is other code than the plain build's.
func TestCodeVariantIsOtherCode(t *testing.T) {
	testnet.RequireRoot(t)
	tags := func(spec *ebpf.CollectionSpec) map[string]string {
		t.Helper()
		coll, err := ebpf.NewCollection(spec)
		if err != nil {
			t.Fatal(err)
		}
		defer coll.Close()
		out := map[string]string{}
		for name, p := range coll.Programs {
			info, err := p.Info()
			if err != nil {
				t.Fatal(err)
			}
			out[name] = info.Tag
		}
		return out
	}
	for _, dp := range All() {
		plain, err := dp.Spec()
		if err != nil {
			t.Fatal(err)
		}
		variant := plain.Copy()
		if err := withVariant(variant, "7"); err != nil {
			t.Fatal(err)
		}
		a, b := tags(plain), tags(variant)
		for name, tag := range a {
			if b[name] == "" || b[name] == tag {
				t.Errorf("%s program %s: variant tag %q, plain %q", dp.Name, name, b[name], tag)
			}
		}
	}
	if err := withVariant(&ebpf.CollectionSpec{}, "x"); err == nil {
		t.Errorf("a variant that is not a number was taken")
	}
}
