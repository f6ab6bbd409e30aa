// Package e2e holds the end-to-end tests of ironlb and the helpers they share. The tests run
// against the kind cluster that e2e/kind/cluster-up.sh creates (control plane + three workers on
// the Docker network "kind") and carry the build tag "e2e", so a plain `go test ./...` never
// needs a cluster:
//
//	e2e/kind/cluster-up.sh
//	go test -tags e2e -count=1 -v ./e2e/
//
// The helpers (Cluster, Client, Eventually) drive the cluster the way a user would: kubectl for
// the API, `docker run --network kind` for a client outside the cluster.
//
// The MetalLB tests (metallb_test.go) replace ironlb for their duration and put it back when
// they end: TestMetalLBManifestRunsIronlb applies MetalLB v0.12.1's own manifest with ironlb's
// speaker and controller images; TestMigrateFromMetalLB installs the real MetalLB v0.12.1
// (hack/build-metallb.sh, cached) and migrates by running the shell blocks of
// docs/migrating-from-metallb.md, so the guide cannot drift from what is tested.
package e2e
