// Package encap holds the encap dataplane's BPF programs and maps (encap.c),
// compiled by bpf2go into encap_bpfel.o and its Go bindings. The objects are
// committed so that building tunmux needs no clang; `make generate` rebuilds
// them.
package encap

//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I../include -I/usr/include/x86_64-linux-gnu" -type tunnel -type tunnel_key -type tunnel_key4 -type tunnel_counters -type slot_info -type counter -type dataplane_meta -type attach_key -type attachment Encap encap.c
//go:generate go run ../internal/shapegen -obj encap_bpfel.o -ident Encap -out shape_bpfel.go
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I../include -I/usr/include/x86_64-linux-gnu -DTUNMUX_OBSERVE" EncapObserve encap.c
