#!/usr/bin/env bash
# op-cost.sh OLD_BINARY NEW_BINARY [N]: the wall time of one tunmux command
# (tunnel add, update, del; 30 of each, one process each) with N tunnels
# already in the map, for two builds side by side in one run. As root; it
# makes and removes its own namespaces and bpffs roots.
set -euo pipefail
old=${1:?usage: op-cost.sh OLD_BINARY NEW_BINARY [N]}
new=${2:?usage: op-cost.sh OLD_BINARY NEW_BINARY [N]}
n=${3:-10000}
file=$(mktemp)
trap 'rm -f "$file"' EXIT
{
  echo "encap:"
  echo "  tunnels:"
  for ((i = 0; i < n; i++)); do
    echo "    - {inner-src: 10.$((i / 250)).$((i % 250)).1, inner-dst: 10.$((i / 250)).$((i % 250)).2, proto: vlan, vlan-id: $((1 + i % 4000)), underlay: ul0, overlay: wl0}"
  done
} > "$file"
for which in old new; do
  bin=${!which}
  root=/sys/fs/bpf/tunmux-opcost-$which-$$
  ns=tunmux-opcost-$which-$$
  ip netns add "$ns"
  ip -n "$ns" link add ul0 type veth peer name ul1
  ip -n "$ns" link add wl0 type veth peer name wl1
  for i in ul0 ul1 wl0 wl1 lo; do ip -n "$ns" link set "$i" up; done
  "$bin" --bpffs "$root" load encap --max-entries $((n + 100)) > /dev/null
  "$bin" --bpffs "$root" --netns "$ns" apply -f "$file" > /dev/null 2>&1
  start=$(date +%s%N)
  for i in $(seq 1 30); do
    t=(--inner-src "10.250.$i.1" --inner-dst "10.250.$i.2")
    "$bin" --bpffs "$root" --netns "$ns" tunnel add "${t[@]}" --proto vlan --vlan-id 7 --underlay ul0 --overlay wl0 > /dev/null 2>&1
    "$bin" --bpffs "$root" --netns "$ns" tunnel update "${t[@]}" --vlan-id 8 > /dev/null 2>&1
    "$bin" --bpffs "$root" --netns "$ns" tunnel del "${t[@]}" > /dev/null 2>&1
  done
  end=$(date +%s%N)
  echo "$which ($bin), $n tunnels: $(( (end - start) / 90 / 1000 )) us per command"
  "$bin" --bpffs "$root" unload encap > /dev/null
  rmdir "$root" 2> /dev/null || true
  ip netns del "$ns"
done
