// Package l2tp holds the l2tp dataplane's BPF programs and maps (l2tp.c):
// L2TPv3 Ethernet pseudowires at TC, compiled by bpf2go into l2tp_bpfel.o
// and its Go bindings. The objects are committed; `make generate` rebuilds
// them.
package l2tp

//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I../include -I/usr/include/x86_64-linux-gnu" -type session -type session_names -type session_counters -type neigh_cache -type counter L2tp l2tp.c
//go:generate go run ../internal/shapegen -obj l2tp_bpfel.o -ident L2tp -out shape_bpfel.go
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I../include -I/usr/include/x86_64-linux-gnu -DTUNMUX_OBSERVE" L2tpObserve l2tp.c
