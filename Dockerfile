# The ironlb images: one static binary on an empty base. Build the binary first, outside Docker,
# so the images need no Go toolchain or network:
#   CGO_ENABLED=0 go build -trimpath -o bin/ironlb ./cmd/ironlb
#   docker build -t ironlb/ironlb:dev .                          (the default, last stage)
#   docker build --target speaker -t ironlb/speaker:dev .
#   docker build --target controller -t ironlb/controller:dev .
#
# speaker and controller are for MetalLB v0.12's own manifest: the same binary as /speaker and
# /controller, MetalLB's entrypoints, where it takes MetalLB's flags and environment
# (cmd/ironlb/metallb.go). MetalLB's manifest sets no user for the speaker and gives it NET_RAW,
# which only stays effective for uid 0, so that image keeps the default user; the controller
# runs as 65534 (its manifest says so too).

FROM scratch AS speaker
COPY bin/ironlb /speaker
ENTRYPOINT ["/speaker"]

FROM scratch AS controller
COPY bin/ironlb /controller
USER 65534:65534
ENTRYPOINT ["/controller"]

# The speaker gets the capabilities it needs (NET_RAW) from its pod spec; the image runs as an
# unprivileged numeric user so runAsNonRoot can be verified without an /etc/passwd.
FROM scratch AS ironlb
COPY bin/ironlb /ironlb
USER 65534:65534
ENTRYPOINT ["/ironlb"]
