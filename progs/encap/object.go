package encap

// Object returns the compiled BPF object encap_bpfel.o, as embedded in the
// binary (its hash identifies the build of the programs).
func Object() []byte { return _EncapBytes }

// ObservedObject returns the compiled observed build, encapobserve_bpfel.o.
func ObservedObject() []byte { return _EncapObserveBytes }
