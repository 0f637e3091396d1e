# tunmux's container image: the static tunmux binary alone, its BPF objects
# embedded. Build it with `make image` (docker or podman).
#
# Stage 1 builds with the Go toolchain; the committed BPF objects are used as
# they are, so no clang is needed. Stage 2 is an empty image (scratch) holding
# the binary and the CA-less, shell-less minimum it needs: nothing else runs in
# the container, so there is nothing else to patch.
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=
# The commit's time orders builds: an agent refuses to replace a newer
# build's programs with older ones. The context has no .git to take it
# from, so it must be given (make image does).
ARG COMMIT_TIME=
RUN test -n "${COMMIT_TIME}" || { echo "COMMIT_TIME is empty: build with make image, or pass --build-arg COMMIT_TIME=\$(git log -1 --format=%ct); without it the image could not tell an upgrade from a downgrade" >&2; exit 1; }
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.commitTime=${COMMIT_TIME}" \
      -o /out/tunmux ./cmd/tunmux \
 && mkdir -p /out/tmp /out/run/netns \
 && chmod 1777 /out/tmp

FROM scratch
COPY --from=build /out/ /
# The binary is the entrypoint: tunmux mounts a bpffs at /sys/fs/bpf itself
# when that is not one (every command that writes does), so the image needs
# no shell and no entrypoint script. Its default command is the agent.
ENTRYPOINT ["/tunmux"]
CMD ["apply", "-f", "/etc/tunmux/fleet.yaml", "--watch", "--metrics-addr", ":9478"]
