# The ironlb image: one static binary (controller and speaker are subcommands) on an empty base.
# Build the binary first, outside Docker, so the image needs no Go toolchain or network:
#   CGO_ENABLED=0 go build -trimpath -o bin/ironlb ./cmd/ironlb
#   docker build -t ironlb/ironlb:dev .
# The speaker gets the capabilities it needs (NET_RAW) from its pod spec; the image runs as an
# unprivileged numeric user so runAsNonRoot can be verified without an /etc/passwd.
FROM scratch
COPY bin/ironlb /ironlb
USER 65534:65534
ENTRYPOINT ["/ironlb"]
