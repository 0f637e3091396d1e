// Package mux holds the mux dataplane's BPF programs and maps (mux.c):
// L3 interfaces multiplexed through one carrier by a DSCP label, compiled
// by bpf2go into mux_bpfel.o and its Go bindings. The objects are
// committed; `make generate` rebuilds them.
package mux

//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I../include -I/usr/include/x86_64-linux-gnu" -type carrier -type member -type member_counters -type member_info -type counter Mux mux.c
//go:generate go run ../internal/shapegen -obj mux_bpfel.o -ident Mux -out shape_bpfel.go
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I../include -I/usr/include/x86_64-linux-gnu -DTUNMUX_OBSERVE" MuxObserve mux.c
