// Package xconnect holds the xconnect dataplane's BPF program and maps
// (xconnect.c): interface pairs cross-connected by XDP devmap redirect,
// compiled by bpf2go into xconnect_bpfel.o and its Go bindings. The objects
// are committed; `make generate` rebuilds them.
package xconnect

//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I../include -I/usr/include/x86_64-linux-gnu" -type port_info -type counter Xconnect xconnect.c
//go:generate go run ../internal/shapegen -obj xconnect_bpfel.o -ident Xconnect -out shape_bpfel.go
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I../include -I/usr/include/x86_64-linux-gnu -DTUNMUX_OBSERVE" XconnectObserve xconnect.c
