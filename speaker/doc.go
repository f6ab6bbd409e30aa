// Package speaker is the Kubernetes glue of the ironlb speaker DaemonSet: it watches Services,
// EndpointSlices, Nodes, the ConfigMap and the other speaker pods, decides which Service IPs this
// node announces, and drives the protocol engines (package layer2 for ARP/NDP, package bgp for
// BGP) and the speaker cluster membership (package membership).
//
// The decision is one pure function over a snapshot (decide): every speaker computes it over
// the same inputs, so all agree on the single layer-2 owner of each Service without talking to
// each other. Every change (an informer event, a membership change, a periodic tick) triggers
// one reconcile of all Services. The rules are MetalLB's (current MetalLB where it fixed v0.12):
//   - A Service is announced only while one of its endpoints can take traffic: ready (an unset
//     ready condition counts as ready) or still serving while it terminates. Otherwise nobody
//     announces it, in layer 2 and BGP, with either externalTrafficPolicy.
//   - Candidates are the nodes whose speaker is alive, without condition NetworkUnavailable, not
//     labelled node.kubernetes.io/exclude-from-external-load-balancers (unless the speakers run
//     with --ignore-exclude-lb) and, for externalTrafficPolicy: Local, hosting such an endpoint.
//   - Layer 2: one candidate announces all the Service's IPs, the one with the lowest
//     sha256(node + "#" + first ingress IP), the first IP as written in the status.
//   - BGP: every candidate advertises.
//
// Two timing rules shape failover. A planned departure (SIGTERM) withdraws every announcement
// first and only then leaves the cluster, so the next owner takes over while this node still
// forwards. A speaker that crashes while its host still answers (a TCP connection to the
// memberlist port is refused, not timed out) stays a candidate for a short restart grace, so a
// container restart does not move its IPs away and back; a host that stops answering (link cut,
// node down) loses its IPs as soon as memberlist declares it dead.
//
// Metrics carry MetalLB v0.12's names, types and labels: metallb_speaker_announced (deleted on
// withdraw), metallb_k8s_client_* (updates_total counts reconcile passes, update_errors_total
// those where applying BGP peers or routes failed), metallb_layer2_* and metallb_bgp_* from the
// engines. Metrics MetalLB lacks keep the ironlb_ prefix.
package speaker
