package main

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name, ip string, cidrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	n.Spec.PodCIDRs = cidrs
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: name},
			{Type: corev1.NodeInternalIP, Address: ip},
		}
	}
	return n
}

func TestDesiredRoutes(t *testing.T) {
	cluster := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/56")}
	tests := []struct {
		name  string
		nodes []*corev1.Node
		want  string
	}{
		{"self skipped", []*corev1.Node{node("a", "172.18.0.2", "10.244.0.0/24")}, "[]"},
		{"others sorted", []*corev1.Node{
			node("c", "172.18.0.4", "10.244.2.0/24"),
			node("a", "172.18.0.2", "10.244.0.0/24"),
			node("b", "172.18.0.3", "10.244.1.0/24"),
		}, "[10.244.1.0/24 via 172.18.0.3 10.244.2.0/24 via 172.18.0.4]"},
		{"no podCIDR yet", []*corev1.Node{node("b", "172.18.0.3")}, "[]"},
		{"no address yet", []*corev1.Node{node("b", "", "10.244.1.0/24")}, "[]"},
		{"outside cluster CIDR", []*corev1.Node{node("b", "172.18.0.3", "192.168.9.0/24")}, "[]"},
		{"dual stack needs an address per family", []*corev1.Node{
			node("b", "172.18.0.3", "10.244.1.0/24", "fd00:10:244:1::/64"),
		}, "[10.244.1.0/24 via 172.18.0.3]"},
		{"legacy podCIDR field", []*corev1.Node{func() *corev1.Node {
			n := node("b", "172.18.0.3")
			n.Spec.PodCIDR = "10.244.7.0/24"
			return n
		}()}, "[10.244.7.0/24 via 172.18.0.3]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprint(desiredRoutes("a", tc.nodes, cluster)); got != tc.want {
				t.Errorf("desiredRoutes = %s, want %s", got, tc.want)
			}
		})
	}
}
