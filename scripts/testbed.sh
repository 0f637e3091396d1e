#!/usr/bin/env bash
# testbed.sh: the two-node network-namespace topology that the demo, the
# end-to-end tests and the benchmarks share.
#
#   PREFIXw1            PREFIXh1                 PREFIXwire         PREFIXh2                 PREFIXw2
#   eth0 10.0.0.1 ---- wl0   ul0 192.168.1.1 ---- n1 [br0] n2 ---- ul0 192.168.1.2   wl0 ---- eth0 10.0.0.2
#        fd00::1                 fd01::1                                fd01::2                  fd00::2
#   (workload 1)       (host 1: tunmux or vxlan)   (the wire)       (host 2: tunmux or vxlan)  (workload 2)
#
# Workloads have MTU 1450 (room for 50 bytes of tunnel headers over an IPv4
# underlay; an IPv6 underlay needs 70: the caller lowers it) and fixed MACs.
# Frames that cross an XDP redirect lose checksum offload, so the senders
# (workload eth0, host ul0) compute checksums in software (ethtool tx off).
# Capture on PREFIXwire/br0: frames there are ordinary skbs, unlike at the
# endpoints where XDP redirects bypass the taps.
#
# usage: testbed.sh up PREFIX         build it (waits for every link to come up)
#        testbed.sh down PREFIX       remove every namespace starting with PREFIX
#        testbed.sh kvxlan PREFIX N VNI [6]   make host N a kernel vxlan endpoint (bridge br0: vx0 + wl0);
#                                     with 6, over the IPv6 underlay, accepting zero UDP checksums
#                                     (udp6zerocsumrx), as tunmux's GSO frames carry (docs/encap.md)
#
# The pseudowire chain (l2tp): two hosts on one Ethernet segment split by a
# pair of LCCEs, as in the L2TPv3 seed's test:
#
#   PREFIXa                 PREFIXl1                        PREFIXl2                 PREFIXb
#   eth0 10.1.0.1 ------- eth1   tun0 172.16.0.1 -------- tun0 172.16.0.2   eth1 ------- eth0 10.1.0.2
#        fd01::1                 fd00::1                        fd00::2                       fd01::2
#   (host A)              (LCCE 1)                        (LCCE 2)                 (host B)
#
# usage: testbed.sh l2tp-up PREFIX    build it; hosts keep MTU 1500 and offloads on:
#                                     the caller sets them as docs/l2tp.md says
#        testbed.sh l2tp-kvxlan PREFIX  instead, bridge each LCCE's eth1 to a kernel vxlan
#                                     device (VNI 100, IPv4 underlay), as a user would without
#                                     tunmux; sets the hosts' MTU to 1450
set -euo pipefail

W1MAC=02:00:00:00:01:01 W2MAC=02:00:00:00:02:02
H1MAC=02:00:00:00:0a:01 H2MAC=02:00:00:00:0a:02

ns() { local n=$1; shift; ip netns exec "$n" "$@"; }

wait_up() { # namespace interface
  for _ in $(seq 1 250); do
    ns "$1" ip -o link show dev "$2" 2>/dev/null | grep -q LOWER_UP && return 0
    sleep 0.02
  done
  echo "testbed: $1/$2 did not come up" >&2
  return 1
}

up() {
  local p=$1
  for n in w1 h1 wire h2 w2; do
    ip netns add "${p}$n"
    ns "${p}$n" ip link set lo up
  done
  ns "${p}wire" ip link add br0 type bridge
  ns "${p}wire" ip link set br0 up
  for i in 1 2; do
    local w=${p}w$i h=${p}h$i wmac hmac
    [ $i = 1 ] && { wmac=$W1MAC; hmac=$H1MAC; } || { wmac=$W2MAC; hmac=$H2MAC; }
    ip link add eth0 netns "$w" address "$wmac" mtu 1450 type veth peer wl0 netns "$h"
    ip link add ul0 netns "$h" address "$hmac" type veth peer n$i netns "${p}wire"
    ns "$w" ip addr add 10.0.0.$i/24 dev eth0
    ns "$w" ip addr add fd00::$i/64 dev eth0 nodad
    ns "$h" ip addr add 192.168.1.$i/24 dev ul0
    ns "$h" ip addr add fd01::$i/64 dev ul0 nodad
    ns "${p}wire" ip link set n$i master br0
    ns "$w" ethtool -K eth0 tx off >/dev/null
    ns "$h" ethtool -K ul0 tx off >/dev/null
    ns "$w" ip link set eth0 up
    ns "$h" ip link set wl0 up
    ns "$h" ip link set ul0 up
    ns "${p}wire" ip link set n$i up
  done
  for i in 1 2; do
    wait_up "${p}w$i" eth0; wait_up "${p}h$i" wl0; wait_up "${p}h$i" ul0; wait_up "${p}wire" n$i
  done
}

down() {
  local p=$1
  for n in $(ip netns list | awk '{print $1}' | grep "^${p}" || true); do
    ip netns del "$n" 2>/dev/null || true
  done
}

bridge_vx0() { # namespace port: bridge the kernel vxlan vx0 with port (br0), wait for vx0
  ns "$1" ip link add br0 type bridge
  ns "$1" ip link set vx0 master br0
  ns "$1" ip link set "$2" master br0
  ns "$1" ip link set vx0 up
  ns "$1" ip link set br0 up
  wait_up "$1" vx0
}

kvxlan() {
  local p=$1 i=$2 vni=$3 family=${4:-4} h=${1}h$2 other
  [ "$i" = 1 ] && other=2 || other=1
  if [ "$family" = 6 ]; then
    ns "$h" ip link add vx0 type vxlan id "$vni" local fd01::$i remote fd01::$other dstport 4789 dev ul0 udp6zerocsumrx
  else
    ns "$h" ip link add vx0 type vxlan id "$vni" local 192.168.1.$i remote 192.168.1.$other dstport 4789 dev ul0
  fi
  bridge_vx0 "$h" wl0
}

l2tp_up() {
  local p=$1
  for n in a l1 l2 b; do
    ip netns add "${p}$n"
    ns "${p}$n" ip link set lo up
  done
  ip link add eth0 netns "${p}a" address 02:00:00:00:0b:01 type veth peer eth1 netns "${p}l1"
  ip link add eth0 netns "${p}b" address 02:00:00:00:0b:02 type veth peer eth1 netns "${p}l2"
  ip link add tun0 netns "${p}l1" address 02:00:00:00:0c:01 type veth peer tun0 netns "${p}l2" address 02:00:00:00:0c:02
  ns "${p}a" ip addr add 10.1.0.1/24 dev eth0
  ns "${p}a" ip addr add fd01::1/64 dev eth0 nodad
  ns "${p}b" ip addr add 10.1.0.2/24 dev eth0
  ns "${p}b" ip addr add fd01::2/64 dev eth0 nodad
  ns "${p}l1" ip addr add 172.16.0.1/24 dev tun0
  ns "${p}l1" ip addr add fd00::1/64 dev tun0 nodad
  ns "${p}l2" ip addr add 172.16.0.2/24 dev tun0
  ns "${p}l2" ip addr add fd00::2/64 dev tun0 nodad
  for x in "a eth0" "b eth0" "l1 eth1" "l1 tun0" "l2 eth1" "l2 tun0"; do
    set -- $x
    ns "${p}$1" ip link set "$2" up
  done
  for x in "a eth0" "b eth0" "l1 eth1" "l1 tun0" "l2 eth1" "l2 tun0"; do
    set -- $x
    wait_up "${p}$1" "$2"
  done
}

l2tp_kvxlan() {
  local p=$1
  for i in 1 2; do
    local l=${p}l$i other=$((3 - i))
    ns "$l" ip link add vx0 type vxlan id 100 local 172.16.0.$i remote 172.16.0.$other dstport 4789 dev tun0
    bridge_vx0 "$l" eth1
  done
  ns "${p}a" ip link set eth0 mtu 1450
  ns "${p}b" ip link set eth0 mtu 1450
}

case "${1:-}" in
  up) up "$2" ;;
  l2tp-up) l2tp_up "$2" ;;
  l2tp-kvxlan) l2tp_kvxlan "$2" ;;
  down) down "$2" ;;
  kvxlan) kvxlan "$2" "$3" "$4" "${5:-4}" ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
