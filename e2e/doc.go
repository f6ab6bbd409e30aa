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
package e2e
