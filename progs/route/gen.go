// Package route holds the route dataplane's BPF programs and maps
// (route.c): LPM overlay routes to weighted, health-aware tunnel nexthops,
// compiled by bpf2go into route_bpfel.o and its Go bindings. The objects
// and log2_table.h are committed; `make generate` rebuilds them.
package route

//go:generate go run ./gentable
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I../include -I/usr/include/x86_64-linux-gnu" -type route_key -type route -type nexthop -type peer_key -type peer -type tunnel_dev -type route_config -type counter Route route.c
//go:generate go run ../internal/shapegen -obj route_bpfel.o -ident Route -out shape_bpfel.go
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I../include -I/usr/include/x86_64-linux-gnu -DTUNMUX_OBSERVE" RouteObserve route.c
