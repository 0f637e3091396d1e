package l2tp

// Object returns the compiled BPF object l2tp_bpfel.o, as embedded in the
// binary (its hash identifies the build of the programs).
func Object() []byte { return _L2tpBytes }

// ObservedObject returns the compiled observed build, l2tpobserve_bpfel.o.
func ObservedObject() []byte { return _L2tpObserveBytes }
