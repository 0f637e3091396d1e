#!/usr/bin/env bash
# bench.sh: runs tunmux's benchmarks (package bench) and prints one table of
# ratios; raw `go test -bench` output and the table go to bench-results.txt.
#   - XDP live frames (BPF_F_TEST_XDP_LIVE_FRAMES), on one CPU: encap and
#     decap packet rates and program run times (bpf_stats), IPv4 and IPv6,
#     beside a bare devmap-redirect floor, with XDP_DROP on the receiving
#     peer (the program's cost) and with XDP_PASS (the whole path), and the
#     limit programs (progs/limits: one 8-byte lookup, a header push, both);
#     and VXLAN encap in its observed build (tunmux capture), idle and
#     capturing every frame, beside the plain build that runs when no
#     capture does;
#   - iperf3 TCP and 64-byte UDP over tunmux VXLAN (XDP hook, and TC hook with
#     offloads on) and over the kernel's vxlan (offloads off, and on);
#   - iperf3 TCP and 64-byte UDP over a tunmux L2TPv3 pseudowire and over the
#     same chain bridged to a kernel vxlan device;
#   - XDP live frames through the xconnect program beside a Linux bridge;
#   - `tunmux apply` of 100,000 tunnels beside one `tunnel add` process each;
#   - iperf3 TCP and 64-byte UDP through a mux member beside the carrier itself,
#     over a veth pair and over two TUN devices relayed by a forwarder;
#   - the route program's cost per packet with 10 and 100,000 prefixes, and
#     iperf3 over a tunmux route beside a kernel route to the same vxlan device.
# Each measurement runs BENCH_COUNT times (default 5); the table shows medians,
# the ratio of the medians, and the lowest and highest ratio of one run's pair
# (run i of a case beside run i of its reference).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${BENCH_COUNT:-5}
frames=${BENCH_FRAMES:-2000000}
out=bench-results.txt
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }

echo "bench: XDP live frames ($frames frames x $count runs), then iperf3 (${count} x 5 s per case); this takes a few minutes" >&2
go test ./bench -run '^$' -bench 'Live|Xconnect' -benchtime "${frames}x" -count "$count" -timeout 30m | tee -a "$raw" >&2
go test ./bench -run '^$' -bench 'Iperf|L2TP|Apply|Mux|Route|ControlPlane|Fleet' -benchtime 1x -count "$count" -timeout 60m | tee -a "$raw" >&2
# Concurrent writers: 8,000 + 2,400 processes take about 5 minutes, so once.
go test ./bench -run '^$' -bench 'Writers' -benchtime 1x -count 1 -timeout 30m | tee -a "$raw" >&2

{
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ), tunmux $(git describe --always --dirty 2>/dev/null || echo dev), medians of $count runs"
  echo
  awk '
    /^Benchmark/ {
      name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
      for (i = 3; i < NF; i += 2) { v[name "|" $(i+1), ++n[name "|" $(i+1)]] = $i }
    }
    function median(key,   m, i, j, t, a) {
      m = n[key]; if (m == 0) return -1
      for (i = 1; i <= m; i++) a[i] = v[key, i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    function row(label, a, unitA, b, unitB, scale,   x, y, i, m, r, lo, hi) {
      x = median(a "|" unitA); y = median(b "|" unitB)
      if (x < 0 || y <= 0) { printf "| %s | n/a | n/a | n/a | n/a |\n", label; return }
      m = n[a "|" unitA] < n[b "|" unitB] ? n[a "|" unitA] : n[b "|" unitB]
      for (i = 1; i <= m; i++) {
        if (v[b "|" unitB, i] <= 0) continue
        r = v[a "|" unitA, i] / v[b "|" unitB, i]
        if (lo == "" || r < lo) lo = r
        if (hi == "" || r > hi) hi = r
      }
      printf "| %s | %.3g | %.3g | %.3g | %.2f–%.2f |\n", label, x / scale, y / scale, x / y, lo, hi
    }
    END {
      print "| measurement | tunmux | reference | ratio | ratio min–max |"
      print "|---|---|---|---|---|"
      split("encap-vxlan decap-vxlan encap-geneve decap-geneve encap-vlan encap-vxlan6 decap-vxlan6 encap-geneve6 decap-geneve6 encap-vlan6", cases, " ")
      for (p = 0; p < 2; p++) {
        peer = p ? "peer-pass" : "peer-drop"; verdict = p ? "XDP_PASS" : "XDP_DROP"
        for (c = 1; c <= 10; c++)
          row("live frames, " verdict " on peer: " cases[c] " vs bare redirect (Mpps)", "Live/" peer "/" cases[c], "pps", "Live/" peer "/floor-redirect", "pps", 1e6)
      }
      for (c = 1; c <= 10; c++)
        row("program run time (bpf_stats), XDP_DROP on peer: " cases[c] " vs bare redirect (ns)", "Live/peer-drop/" cases[c], "run-ns", "Live/peer-drop/floor-redirect", "run-ns", 1)
      split("limit-lookup limit-push limit-encap", limit, " ")
      for (c = 1; c <= 3; c++) {
        row("limits (progs/limits), XDP_DROP on peer: " limit[c] " vs bare redirect (Mpps)", "Live/peer-drop/" limit[c], "pps", "Live/peer-drop/floor-redirect", "pps", 1e6)
        row("limits (progs/limits), XDP_DROP on peer: " limit[c] " run time vs bare redirect (ns)", "Live/peer-drop/" limit[c], "run-ns", "Live/peer-drop/floor-redirect", "run-ns", 1)
      }
      row("encap-vxlan vs limit-encap, a VXLAN encap with no feature, XDP_DROP on peer (run time, ns)", "Live/peer-drop/encap-vxlan", "run-ns", "Live/peer-drop/limit-encap", "run-ns", 1)
      row("capture off is the plain build (no capture code); the observed build with nothing asked vs it: encap-vxlan run time (ns)", "Live/peer-drop/encap-vxlan-observed-idle", "run-ns", "Live/peer-drop/encap-vxlan", "run-ns", 1)
      row("capturing every frame at entry and exit (128 B each) vs capture off: encap-vxlan, XDP_DROP on peer (Mpps)", "Live/peer-drop/encap-vxlan-capturing", "pps", "Live/peer-drop/encap-vxlan", "pps", 1e6)
      row("capturing every frame at entry and exit vs capture off: encap-vxlan run time (ns)", "Live/peer-drop/encap-vxlan-capturing", "run-ns", "Live/peer-drop/encap-vxlan", "run-ns", 1)
      x = median("Live/peer-drop/encap-vxlan-capturing|lost-share")
      if (x >= 0) printf "| capturing at full rate: share of records lost (perf buffer full; frames never held) | %.3g | - | - | - |\n", x
      row("live frames, XDP_DROP on peer: xconnect vs a Linux bridge of the same veths (Mpps)", "Xconnect/xconnect", "pps", "Xconnect/bridge", "pps", 1e6)
      row("TCP w1 to w2: tunmux vxlan TC hook vs kernel vxlan, both with offloads (Gbit/s)", "Iperf/tunmux-vxlan-tc/tcp", "Gbit/s", "Iperf/kernel-vxlan-offload/tcp", "Gbit/s", 1)
      row("UDP 64 B w1 to w2: tunmux vxlan TC hook vs kernel vxlan, both with offloads (rx kpps)", "Iperf/tunmux-vxlan-tc/udp64", "rx-pps", "Iperf/kernel-vxlan-offload/udp64", "rx-pps", 1e3)
      row("TCP w1 to w2: tunmux vxlan XDP hook vs kernel vxlan, same offloads (Gbit/s)", "Iperf/tunmux-vxlan/tcp", "Gbit/s", "Iperf/kernel-vxlan/tcp", "Gbit/s", 1)
      row("TCP w1 to w2: tunmux vxlan XDP hook vs kernel vxlan with tx offloads (Gbit/s)", "Iperf/tunmux-vxlan/tcp", "Gbit/s", "Iperf/kernel-vxlan-offload/tcp", "Gbit/s", 1)
      row("UDP 64 B w1 to w2: tunmux vxlan XDP hook vs kernel vxlan, same offloads (rx kpps)", "Iperf/tunmux-vxlan/udp64", "rx-pps", "Iperf/kernel-vxlan/udp64", "rx-pps", 1e3)
      row("UDP 64 B w1 to w2: tunmux vxlan XDP hook vs kernel vxlan with tx offloads (rx kpps)", "Iperf/tunmux-vxlan/udp64", "rx-pps", "Iperf/kernel-vxlan-offload/udp64", "rx-pps", 1e3)
      row("TCP host A to B: tunmux L2TPv3/UDP pseudowire vs kernel vxlan bridged (Gbit/s)", "L2TP/tunmux-l2tp-udp/tcp", "Gbit/s", "L2TP/kernel-vxlan-bridge/tcp", "Gbit/s", 1)
      row("UDP 64 B host A to B: tunmux L2TPv3/UDP pseudowire vs kernel vxlan bridged (rx kpps)", "L2TP/tunmux-l2tp-udp/udp64", "rx-pps", "L2TP/kernel-vxlan-bridge/udp64", "rx-pps", 1e3)
      row("TCP through a mux member vs an Ethernet carrier (veth) used directly (Gbit/s)", "Mux/veth/member/tcp", "Gbit/s", "Mux/veth/carrier/tcp", "Gbit/s", 1)
      row("UDP 64 B through a mux member vs an Ethernet carrier (veth) used directly (rx kpps)", "Mux/veth/member/udp64", "rx-pps", "Mux/veth/carrier/udp64", "rx-pps", 1e3)
      row("TCP through a mux member, netdev_max_backlog 10000, vs an Ethernet carrier (veth) (Gbit/s)", "Mux/veth/member-backlog10k/tcp", "Gbit/s", "Mux/veth/carrier/tcp", "Gbit/s", 1)
      row("UDP 64 B through a mux member, netdev_max_backlog 10000, vs an Ethernet carrier (veth) (rx kpps)", "Mux/veth/member-backlog10k/udp64", "rx-pps", "Mux/veth/carrier/udp64", "rx-pps", 1e3)
      row("TCP through a mux member vs an L3 carrier (TUN relay) used directly (Gbit/s)", "Mux/tun-relay/member/tcp", "Gbit/s", "Mux/tun-relay/carrier/tcp", "Gbit/s", 1)
      row("UDP 64 B through a mux member vs an L3 carrier (TUN relay) used directly (rx kpps)", "Mux/tun-relay/member/udp64", "rx-pps", "Mux/tun-relay/carrier/udp64", "rx-pps", 1e3)
      row("TCP through a mux member, netdev_max_backlog 10000, vs an L3 carrier (TUN relay) (Gbit/s)", "Mux/tun-relay/member-backlog10k/tcp", "Gbit/s", "Mux/tun-relay/carrier/tcp", "Gbit/s", 1)
      row("UDP 64 B through a mux member, netdev_max_backlog 10000, vs an L3 carrier (TUN relay) (rx kpps)", "Mux/tun-relay/member-backlog10k/udp64", "rx-pps", "Mux/tun-relay/carrier/udp64", "rx-pps", 1e3)
      row("route program, 1 nexthop: 100,000 prefixes vs 10 (ns/packet)", "RouteLookup/prefixes-100000/nexthops-1", "ns/pkt", "RouteLookup/prefixes-10/nexthops-1", "ns/pkt", 1)
      row("route program, 8 nexthops: 100,000 prefixes vs 10 (ns/packet)", "RouteLookup/prefixes-100000/nexthops-8", "ns/pkt", "RouteLookup/prefixes-10/nexthops-8", "ns/pkt", 1)
      row("route program, 10 prefixes: 8 nexthops vs 1 (ns/packet)", "RouteLookup/prefixes-10/nexthops-8", "ns/pkt", "RouteLookup/prefixes-10/nexthops-1", "ns/pkt", 1)
      row("TCP over a tunmux route vs a kernel route to the same vxlan device (Gbit/s)", "Route/tunmux-route/tcp", "Gbit/s", "Route/kernel-route/tcp", "Gbit/s", 1)
      row("UDP 64 B over a tunmux route vs a kernel route to the same vxlan device (rx kpps)", "Route/tunmux-route/udp64", "rx-pps", "Route/kernel-route/udp64", "rx-pps", 1e3)
      row("100,000 tunnels: tunmux apply vs one tunnel add process each (entries/s)", "Apply/apply-100000", "entries/s", "Apply/tunnel-add-x1000", "entries/s", 1)
      row("100,000 tunnels: tunmux apply vs one tunnel add process each, 1,000 timed (s)", "Apply/apply-100000", "s", "Apply/tunnel-add-x1000", "s", 1)
      row("100,000 tunnels, fresh root: apply JSON vs bpftool batch file of the same map updates (s)", "Apply/apply-100000-json", "s", "Apply/bpftool-batch-100000", "s", 1)
      row("100,000 tunnels, fresh root: apply YAML vs bpftool batch file of the same map updates (s)", "Apply/apply-100000", "s", "Apply/bpftool-batch-100000", "s", 1)
      row("100,000 tunnels, nothing to change: apply JSON again vs bpftool batch file (s)", "Apply/reapply-100000-json", "s", "Apply/bpftool-batch-100000", "s", 1)
      row("100,000 tunnels, nothing to change: apply YAML again vs bpftool batch file (s)", "Apply/reapply-100000", "s", "Apply/bpftool-batch-100000", "s", 1)
      row("100,000 tunnels: peak memory of apply JSON vs bpftool batch file (MB)", "Apply/apply-100000-json", "peak-MB", "Apply/bpftool-batch-100000", "peak-MB", 1)
      row("100,000 tunnels: peak memory of apply YAML vs bpftool batch file (MB)", "Apply/apply-100000", "peak-MB", "Apply/bpftool-batch-100000", "peak-MB", 1)
      row("10,000 tunnel add lines: tunmux batch vs one tunnel add process each (entries/s)", "Apply/batch-10000", "entries/s", "Apply/tunnel-add-x1000", "entries/s", 1)
      row("5,000 tunnels: parse one node of a fleet file (defaults, nodes, variables) vs the plain file (ns)", "Fleet/parse-fleet-node", "ns/op", "Fleet/parse-plain", "ns/op", 1)
      row("5,000 tunnels: parse one node of a fleet file vs the plain file (bytes allocated)", "Fleet/parse-fleet-node", "B/op", "Fleet/parse-plain", "B/op", 1)
      row("5,000 tunnels in place: an agent starting (apply --watch, to its first report) vs apply with nothing to change (ms)", "Fleet/agent-adopts", "ms", "Fleet/reapply", "ms", 1)
      row("5,000 tunnels in place: an agent of changed programs starting (upgrade in place) vs apply with nothing to change (ms)", "Fleet/agent-upgrades", "ms", "Fleet/reapply", "ms", 1)
      row("tunnel get vs bpftool map lookup pinned, one process each (ms, median of 30)", "ControlPlane/get", "tunmux-ms", "ControlPlane/get", "bpftool-ms", 1)
      row("tunnel update vs bpftool map update pinned (ms, median of 30)", "ControlPlane/update", "tunmux-ms", "ControlPlane/update", "bpftool-ms", 1)
      row("tunnel add + del vs bpftool map update + delete (ms, median of 30)", "ControlPlane/add-del", "tunmux-ms", "ControlPlane/add-del", "bpftool-ms", 1)
      row("status vs bpftool map lookup pinned (ms, median of 30)", "ControlPlane/status", "tunmux-ms", "ControlPlane/status", "bpftool-ms", 1)
      row("floor: a program linking only the libraries tunmux is built on vs bpftool map lookup pinned (ms, median of 30)", "ControlPlane/import-floor", "tunmux-ms", "ControlPlane/import-floor", "bpftool-ms", 1)
      row("16 writers x 500 tunnel add processes vs one writer x 500 (adds/s, all writers)", "Writers/16-writers-500-adds", "ops/s", "Writers/one-writer-500-adds", "ops/s", 1)
      row("16 writers x 500 tunnel add: p50 wall time of an add vs one writer (ms)", "Writers/16-writers-500-adds", "p50-ms", "Writers/one-writer-500-adds", "p50-ms", 1)
      row("16 writers x 500 tunnel add: p99 wall time of an add vs one writer (ms)", "Writers/16-writers-500-adds", "p99-ms", "Writers/one-writer-500-adds", "p99-ms", 1)
      row("16 writers x 500 tunnel add: p50 wait for the lock vs its p50 hold, one writer (ms)", "Writers/16-writers-500-adds", "wait-p50-ms", "Writers/one-writer-500-adds", "held-p50-ms", 1)
      row("16 writers x 500 tunnel add: longest wait for the lock vs its p50 hold, one writer (ms)", "Writers/16-writers-500-adds", "wait-max-ms", "Writers/one-writer-500-adds", "held-p50-ms", 1)
      row("16 writers x 150 tunnel add/del: p99 wait for the lock vs its p50 hold, one writer (ms)", "Writers/16-writers-150-add-del", "wait-p99-ms", "Writers/one-writer-500-adds", "held-p50-ms", 1)
      for (w = 1; w <= 2; w++) {
        k = w == 1 ? "Writers/16-writers-500-adds|failed" : "Writers/16-writers-150-add-del|failed"
        if (n[k] > 0) printf "| %s: operations that failed (must be 0) | %d | - | - | - |\n", (w == 1 ? "16 writers x 500 tunnel add" : "16 writers x 150 tunnel add/del"), median(k)
      }
    }' "$raw"
} >"$out.table"
cat "$raw" "$out.table" >"$out"
rm -f "$out.table"
echo
sed -n '/^machine:/,$p' "$out"
