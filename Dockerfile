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
ARG COMMIT_TIME=
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.commitTime=${COMMIT_TIME}" \
      -o /out/tunmux ./cmd/tunmux \
 && mkdir -p /out/tmp /out/run/netns /out/sys/fs/bpf \
 && chmod 1777 /out/tmp

FROM scratch
COPY --from=build /out/ /
# The binary is the entrypoint: tunmux mounts a bpffs at /sys/fs/bpf itself
# when that is not one (every command that writes does), so the image needs
# no shell and no entrypoint script. Its default command is the agent.
ENTRYPOINT ["/tunmux"]
CMD ["apply", "-f", "/etc/tunmux/fleet.yaml", "--watch", "--metrics-addr", ":9478"]
