// Package xdpwatch holds the BPF programs `tunmux doctor` loads for as long
// as it samples (xdpwatch.c): BTF tracepoints that count frames the kernel
// drops after XDP redirected them, by interface and namespace. The objects
// are committed; `make generate` rebuilds them.
package xdpwatch

//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I../include -I/usr/include/x86_64-linux-gnu" -type drop_key -type drop_count Xdpwatch xdpwatch.c
