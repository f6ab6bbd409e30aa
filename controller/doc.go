// Package controller assigns LoadBalancer IPs to Services from the pools of the MetalLB-format
// ConfigMap and writes them into .status.loadBalancer.ingress.
//
// It follows client-go's sample-controller: informers on Services and on the ConfigMap feed one
// rate-limited workqueue, and an idempotent sync per key computes the desired state and writes
// only the difference. The address bookkeeping itself lives in package ipam; this package is the
// Kubernetes glue around it.
//
// Two rules keep addresses stable. At start-up, after the informers have synced and before any
// new address is handed out, every address already present in a Service's status is claimed
// again, so a restart never moves an IP. Later, an address that is still valid under the current
// configuration and request is never changed; a Service is re-assigned only when its address left
// every pool or its request changed. A ConfigMap that does not parse is rejected and the last good
// configuration stays in force.
//
// Metrics carry MetalLB v0.12's names, types and labels (metallb_allocator_addresses_total,
// _addresses_in_use_total and _services_allocated_total per pool; metallb_k8s_client_*), so
// MetalLB's dashboards and Helm chart alerts keep working; see metrics.go. They are exported only
// while this replica leads.
package controller
