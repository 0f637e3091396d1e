#!/usr/bin/env bash
# demo.sh: tunmux on the built-in two-node testbed (scripts/testbed.sh).
# Two workloads, 10.0.0.1 and 10.0.0.2, talk through a GENEVE tunnel that
# tunmux pushes and pops at XDP on each host; the demo loads, attaches, adds
# the tunnels, pings, shows `tunmux status` and `tunmux stats` and one frame
# from the wire as tshark decodes it, then tears everything down (also when
# a step fails). Run as root: make demo.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${TUNMUX:-$PWD/bin/tunmux}
P=tmxdemo-
ROOT=/sys/fs/bpf/tunmux-demo

[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces and loads BPF programs)" >&2; exit 1; }
[ -x "$T" ] || { echo "demo: $T is missing; run 'make build'" >&2; exit 1; }

cleanup() {
  set +e
  [ -n "${tshark_pid:-}" ] && kill "$tshark_pid" 2>/dev/null
  for n in 1 2; do "$T" --bpffs "$ROOT-node$n" unload encap >/dev/null 2>&1; rmdir "$ROOT-node$n" 2>/dev/null; done
  bash scripts/testbed.sh down "$P"
  [ -n "${work:-}" ] && rm -rf "$work"
}
cleanup >/dev/null 2>&1 || true   # leftovers of an interrupted run
work=$(mktemp -d)
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "testbed: workload w1 (10.0.0.1) - host h1 - wire - host h2 - workload w2 (10.0.0.2)"
bash scripts/testbed.sh up "$P"
echo "namespaces: $(ip netns list | awk '{print $1}' | grep "^$P" | sort | tr '\n' ' ')"

for n in 1 2; do
  o=$((3 - n))
  say "node $n: load, attach, add the GENEVE tunnel (one bpffs root per node: $ROOT-node$n)"
  tm=("$T" --bpffs "$ROOT-node$n" --netns "${P}h$n")
  run "${tm[@]}" load encap
  run "${tm[@]}" attach encap wl0
  run "${tm[@]}" attach decap ul0
  run "${tm[@]}" tunnel add --inner-src 10.0.0.$n --inner-dst 10.0.0.$o --proto geneve --vni 100 \
    --outer-src 192.168.1.$n --outer-dst 192.168.1.$o --dst-mac 02:00:00:00:0a:0$o --underlay ul0 --overlay wl0
done

say "capture on the wire (frames there are skbs; XDP redirects bypass taps at the hosts)"
ip netns exec "${P}wire" tshark -i br0 -f "udp port 6081 and ip src 192.168.1.1" -c 1 -a duration:30 \
  -o ip.check_checksum:TRUE -O eth,ip,udp,geneve -V >"$work/frame.txt" 2>"$work/tshark.err" &
tshark_pid=$!
for _ in $(seq 1 500); do grep -q "Capturing on" "$work/tshark.err" 2>/dev/null && break; sleep 0.02; done

say "ping across the tunnel (ARP crosses it too: no static neighbours)"
run ip netns exec "${P}w1" ping -c 3 -i 0.2 10.0.0.2

say "tunmux status (node 1)"
run "$T" --bpffs "$ROOT-node1" status

say "tunmux stats (node 1, counters that moved)"
run "$T" --bpffs "$ROOT-node1" stats encap --nonzero

say "tunnels as JSON, for scripts (node 1)"
run "$T" --bpffs "$ROOT-node1" -o json tunnel list

say "one frame from the wire, decoded by tshark"
wait "$tshark_pid" || true
tshark_pid=
grep -v '^$' "$work/frame.txt" || { echo "demo: tshark captured nothing" >&2; cat "$work/tshark.err" >&2; exit 1; }

say "done: tearing down"
