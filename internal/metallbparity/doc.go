// Package metallbparity holds only a test: it asks the real MetalLB v0.12.1 speaker (built by
// hack/build-metallb.sh) for its verdict on every configuration of internal/parityrows and
// checks the table's MetalLB column against it. config.TestMetalLBParity checks ironlb's column
// against the same rows, so the two together compare ironlb with MetalLB itself, not with a
// reading of its source.
//
// The speaker is the oracle for every row: it parses the ConfigMap as the controller does, then
// also refuses what its native BGP mode lacks (DiscardFRROnly: bfd-profile, bfd-profiles,
// keepalive-time, IPv6 BGP pools), which the controller accepts (it validates nothing beyond
// parsing). Its verdict is the "configLoaded" or "configStale" event it logs for the ConfigMap,
// cross-checked with its metallb_k8s_client_config_stale_bool metric. It runs in a network
// namespace of the test's own that has only a loopback interface, so its layer-2 announcer
// sees no interface and its BGP sessions to the rows' peers (10.0.0.1) cannot leave; it reaches
// the test's kube-apiserver through a proxy listening inside that namespace.
package metallbparity
