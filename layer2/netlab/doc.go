// Package netlab builds throw-away layer-2 labs out of Linux network
// namespaces for the layer2 tests and the failover benchmark: a "switch"
// namespace holding a bridge, node namespaces and a client namespace, each
// attached to the bridge by a veth pair. It also runs helper roles (an
// Announcer driven over stdin/stdout, a UDP echo server, a UDP prober, and a
// mini speaker that combines membership, the restart-grace liveness tracker,
// the owner election and an Announcer the way the speaker does) as child
// processes inside those namespaces, so that every socket is opened in the
// right namespace. Everything needs root and iproute2.
package netlab
