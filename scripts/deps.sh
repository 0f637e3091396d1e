#!/usr/bin/env bash
# Installs every Debian package that building, testing, the demo and the benchmarks need.
# Idempotent and noninteractive: it runs `apt-get update` once, and only when something is missing.
set -euo pipefail

packages=(
  clang llvm libbpf-dev libc6-dev linux-libc-dev   # bpf2go: compile progs/*.c
  make git ca-certificates                          # build
  iproute2 iputils-ping ethtool bpftool             # tests: namespaces, veths, offloads, pins
  tshark iperf3 procps util-linux                   # tests: decoding, throughput, nsenter
  time                                              # bench: peak memory (/usr/bin/time)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing ${missing[*]}; run as root (sudo make deps)" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer once, before installing.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
