// Package metallbparity holds only a test: it asks the real MetalLB v0.12.1 speaker and
// controller (built by hack/build-metallb.sh) for their verdict on every configuration of
// internal/parityrows and checks the table's MetalLB column against them. config.TestMetalLBParity
// checks ironlb's column against the same rows, so the two together compare ironlb with MetalLB
// itself, not with a reading of its source.
//
// The table's MetalLB column is the speaker's verdict: the speaker parses the ConfigMap as the
// controller does, then also refuses what its native BGP mode lacks (DiscardFRROnly:
// bfd-profile, bfd-profiles, keepalive-time, IPv6 BGP pools). The controller validates nothing
// beyond parsing, so it must give the same verdict except on those rows, which it accepts; its
// verdict also shows that a rule the speaker's native-mode check hides (keepalive-time above
// hold-time) is one of MetalLB's parsing rules.
//
// A verdict is the "configLoaded" or "configStale" event the process logs for the ConfigMap,
// cross-checked with its metallb_k8s_client_config_stale_bool metric. Both processes run in a
// network namespace of the test's own that has only a loopback interface, so the speaker's
// layer-2 announcer sees no interface and its BGP sessions to the rows' peers (10.0.0.1) cannot
// leave; they reach the test's kube-apiserver through a proxy listening inside that namespace.
package metallbparity
