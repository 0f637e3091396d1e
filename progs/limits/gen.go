// Package limits holds BPF programs for the benchmarks only (limits.c): the
// least an XDP encap that looks a tunnel up per frame can do, step by step,
// to measure how close tunmux's encap comes to it. tunmux never loads them.
package limits

//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I../include -I/usr/include/x86_64-linux-gnu" -type tmpl -type tmpl_key Limits limits.c
