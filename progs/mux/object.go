package mux

// Object returns the compiled BPF object mux_bpfel.o, as embedded in the
// binary (its hash identifies the build of the programs).
func Object() []byte { return _MuxBytes }

// ObservedObject returns the compiled observed build, muxobserve_bpfel.o.
func ObservedObject() []byte { return _MuxObserveBytes }
