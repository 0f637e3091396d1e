package route

// Object returns the compiled BPF object route_bpfel.o, as embedded in the
// binary (its hash identifies the build of the programs).
func Object() []byte { return _RouteBytes }

// ObservedObject returns the compiled observed build, routeobserve_bpfel.o.
func ObservedObject() []byte { return _RouteObserveBytes }
