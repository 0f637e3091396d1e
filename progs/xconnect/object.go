package xconnect

// Object returns the compiled BPF object xconnect_bpfel.o, as embedded in the
// binary (its hash identifies the build of the programs).
func Object() []byte { return _XconnectBytes }

// ObservedObject returns the compiled observed build, xconnectobserve_bpfel.o.
func ObservedObject() []byte { return _XconnectObserveBytes }
