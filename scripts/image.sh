#!/usr/bin/env bash
# Build tunmux's container image with docker or podman, whichever answers.
# Usage: scripts/image.sh IMAGE VERSION COMMIT COMMIT_TIME
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:?image name}
version=${2:-dev}
commit=${3:-}
commit_time=${4:-}

engine=""
for e in docker podman; do
  command -v "$e" >/dev/null || continue
  if "$e" info >/dev/null 2>&1; then
    engine=$e
    break
  fi
  echo "make image: $e is installed but its engine does not answer ('$e info' fails)." >&2
done
if [ -z "$engine" ]; then
  echo "make image: no container engine here: install docker (with its daemon running) or podman, then run make image again." >&2
  echo "make image: the image is the Dockerfile's two stages: 'go build' of ./cmd/tunmux (static, CGO_ENABLED=0), then the binary alone on scratch." >&2
  exit 1
fi
echo "make image: building $image with $engine" >&2
exec "$engine" build -t "$image" \
  --build-arg VERSION="$version" --build-arg COMMIT="$commit" --build-arg COMMIT_TIME="$commit_time" .
