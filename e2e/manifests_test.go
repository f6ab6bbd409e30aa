//go:build e2e

package e2e

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// installIronlb applies the walkthrough's steps 2–4: namespace, memberlist Secret, ironlb.
// They stay installed: they are what the other tests (and the demo) run against.
func installIronlb(t *testing.T, c *Cluster) {
	t.Helper()
	c.ApplyFile(t, "manifests/namespace.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.KubectlCtx(ctx, "-n", Namespace, "get", "secret", "memberlist"); err != nil {
		key, err := exec.Command("openssl", "rand", "-base64", "128").Output()
		if err != nil {
			t.Fatalf("openssl rand: %v", err)
		}
		c.Kubectl(t, "create", "secret", "generic", "-n", Namespace, "memberlist",
			"--from-literal=secretkey="+strings.TrimSpace(string(key)))
	}
	c.ApplyFile(t, "manifests/ironlb.yaml")
}

func TestRBACIsSufficientAndMinimal(t *testing.T) {
	c := Setup(t)
	installIronlb(t, c)
	const all = "" // cluster-wide
	tests := []struct {
		sa, verb, resource, namespace string
		want                          bool
	}{
		// The controller reads Services and writes only their status.
		{"controller", "list", "services", all, true},
		{"controller", "watch", "services", all, true},
		{"controller", "update", "services/status", all, true},
		{"controller", "patch", "services/status", "default", true},
		{"controller", "create", "events", "default", true},
		{"controller", "create", "events.events.k8s.io", "default", true},
		{"controller", "get", "configmaps", Namespace, true},
		{"controller", "watch", "configmaps", Namespace, true},
		{"controller", "create", "leases.coordination.k8s.io", Namespace, true},
		{"controller", "update", "leases.coordination.k8s.io", Namespace, true},
		{"controller", "update", "services", "default", true},
		{"controller", "patch", "services", "default", false},
		{"controller", "delete", "services", "default", false},
		{"controller", "get", "secrets", Namespace, false},
		{"controller", "list", "secrets", all, false},
		{"controller", "delete", "pods", Namespace, false},
		{"controller", "list", "configmaps", "kube-system", false},
		{"controller", "create", "leases.coordination.k8s.io", "kube-system", false},
		{"controller", "list", "nodes", all, false},
		// The speaker only reads, and records Events.
		{"speaker", "list", "services", all, true},
		{"speaker", "watch", "services", all, true},
		{"speaker", "list", "endpointslices.discovery.k8s.io", all, true},
		{"speaker", "watch", "endpointslices.discovery.k8s.io", all, true},
		{"speaker", "list", "nodes", all, true},
		{"speaker", "watch", "nodes", all, true},
		{"speaker", "create", "events", "default", true},
		{"speaker", "get", "configmaps", Namespace, true},
		{"speaker", "list", "pods", Namespace, true},
		{"speaker", "watch", "pods", Namespace, true},
		{"speaker", "update", "services", "default", false},
		{"speaker", "update", "services/status", "default", false},
		{"speaker", "get", "secrets", Namespace, false},
		{"speaker", "list", "configmaps", "kube-system", false},
		{"speaker", "list", "pods", all, false},
		{"speaker", "delete", "pods", Namespace, false},
		{"speaker", "patch", "nodes", all, false},
		{"speaker", "create", "leases.coordination.k8s.io", Namespace, false},
	}
	for _, tc := range tests {
		where := tc.namespace
		if where == all {
			where = "cluster-wide"
		}
		name := tc.sa + " " + tc.verb + " " + tc.resource + " " + where
		t.Run(name, func(t *testing.T) {
			if got := c.CanI(t, tc.sa, tc.verb, tc.resource, tc.namespace); got != tc.want {
				t.Errorf("can-i = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestComponentsRun(t *testing.T) {
	c := Setup(t)
	installIronlb(t, c)
	c.WaitRollout(t, Namespace, "daemonset/speaker", 3*time.Minute)
	c.WaitRollout(t, Namespace, "deployment/controller", 3*time.Minute)
	for _, component := range []string{"speaker", "controller"} {
		out := c.Kubectl(t, "-n", Namespace, "get", "pods", "-l", "app=metallb,component="+component,
			"-o", `jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if component == "speaker" {
			nodes := strings.Fields(c.Kubectl(t, "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"))
			if len(lines) != len(nodes) {
				t.Errorf("%d speaker pods for %d nodes:\n%s", len(lines), len(nodes), out)
			}
		}
		for _, l := range lines {
			if f := strings.Fields(l); len(f) != 2 || f[1] != "True" {
				t.Errorf("%s pod not Ready: %q", component, l)
			}
		}
	}
}

// TestManifestHardening (issue 9, item 12; issue 10, item 8): the running pods carry the
// priority classes, resource requests and memory limits of the manifest, and the
// app.kubernetes.io labels, while the selectors stay MetalLB's (app=metallb, component=...),
// which existing DaemonSets and Deployments cannot change.
func TestManifestHardening(t *testing.T) {
	c := Setup(t)
	installIronlb(t, c)
	c.WaitRollout(t, Namespace, "daemonset/speaker", 3*time.Minute)
	c.WaitRollout(t, Namespace, "deployment/controller", 3*time.Minute)
	tests := []struct {
		component, object, priorityClass string
	}{
		{"speaker", "daemonset/speaker", "system-node-critical"},
		{"controller", "deployment/controller", "system-cluster-critical"},
	}
	for _, tc := range tests {
		t.Run(tc.component, func(t *testing.T) {
			sel := c.Kubectl(t, "-n", Namespace, "get", tc.object, "-o", "jsonpath={.spec.selector.matchLabels}")
			if want := `{"app":"metallb","component":"` + tc.component + `"}`; sel != want {
				t.Errorf("%s selector %s, want %s", tc.object, sel, want)
			}
			out := c.Kubectl(t, "-n", Namespace, "get", "pods", "-l", "app=metallb,component="+tc.component, "-o",
				`jsonpath={range .items[*]}{.metadata.name} {.spec.priorityClassName} {.spec.priority} {.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.requests.memory} {.spec.containers[0].resources.limits.memory} {.metadata.labels.app\.kubernetes\.io/name} {.metadata.labels.app\.kubernetes\.io/component} {.metadata.labels.app\.kubernetes\.io/part-of}{"\n"}{end}`)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) == 0 || lines[0] == "" {
				t.Fatalf("no %s pods", tc.component)
			}
			for _, l := range lines {
				f := strings.Fields(l)
				if len(f) != 9 {
					t.Errorf("pod %q lacks a priority, request, limit or label", l)
					continue
				}
				// The system-*-critical classes are the only ones at or above 2000000000.
				if prio, err := strconv.Atoi(f[2]); f[1] != tc.priorityClass || err != nil || prio < 2000000000 {
					t.Errorf("pod %s: priority class %s (%s), want %s", f[0], f[1], f[2], tc.priorityClass)
				}
				if f[6] != "ironlb" || f[7] != tc.component || f[8] != "ironlb" {
					t.Errorf("pod %s: app.kubernetes.io name/component/part-of = %v", f[0], f[6:])
				}
			}
		})
	}
}
