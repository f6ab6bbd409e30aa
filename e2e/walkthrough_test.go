//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// ensurePool applies the walkthrough's pool (step 5) unless a `config` ConfigMap exists; one
// this test created is deleted when it ends.
func ensurePool(t *testing.T, c *Cluster) { t.Helper(); applyPoolIfMissing(t, c, true) }

// applyPoolIfMissing creates the walkthrough's ConfigMap when there is none, removed again when
// the test ends if removeAfter is set.
func applyPoolIfMissing(t *testing.T, c *Cluster, removeAfter bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.KubectlCtx(ctx, "-n", Namespace, "get", "configmap", "config"); err == nil {
		return
	}
	c.Apply(t, fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {namespace: %s, name: config}
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - %s
`, Namespace, WalkthroughPool(KindSubnetV4(t))), removeAfter)
}

var nodeAnswer = regexp.MustCompile(`^NODE: (\S+), POD IP:(\S+)$`)

// TestWalkthrough is DESIGN §1 steps 5–8: the app behind a LoadBalancer Service answers
// through the Service's IP from a client on the kind network, from pods on several nodes.
func TestWalkthrough(t *testing.T) {
	c := Setup(t)
	client := c.StartClient(t)
	_, ip := deployWalkthroughApp(t, c, client)
	if pool := KindSubnetV4(t); !pool.Contains(ip) {
		t.Errorf("EXTERNAL-IP %s outside the kind network %s", ip, pool)
	}
	url := "http://" + ip.String() + "/host"

	perNode := map[string]int{}
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		body, err := client.Get(ctx, url)
		cancel()
		if err != nil {
			t.Errorf("request %d: %v", i, err)
			continue
		}
		m := nodeAnswer.FindStringSubmatch(strings.TrimSpace(body))
		if m == nil {
			t.Errorf("request %d: unexpected answer %q", i, body)
			continue
		}
		perNode[m[1]]++
	}
	t.Logf("answers per node through %s: %v", ip, perNode)
	if len(perNode) < 2 {
		t.Errorf("answers from %d node(s), want at least 2: %v", len(perNode), perNode)
	}
}
