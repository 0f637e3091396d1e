#!/usr/bin/env bash
# Regenerates the BPF objects and Go bindings into a temporary copy of the
# tree and fails if the result differs from what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r go.mod go.sum progs hrw "$tmp/"  # hrw: route's log2 table is generated from it
(cd "$tmp" && go generate ./progs/... >/dev/null)
status=0
for f in $(cd progs && find . -name '*_bpfel.o' -o -name '*_bpfel.go' -o -name 'log2_table.h'); do
  if ! cmp -s "progs/$f" "$tmp/progs/$f"; then
    echo "check-generated: progs/$f differs from a fresh 'make generate'; run it and commit the result" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "check-generated: BPF objects match their sources"
exit $status
