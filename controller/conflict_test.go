package controller

import (
	"context"
	"io"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// Status writes carry the resourceVersion the decision was made on; a conflict is returned (so
// the key is requeued with backoff) and nothing is written over the newer object.
func TestStatusWriteConflictIsRetriedNotOverwritten(t *testing.T) {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: "config", ResourceVersion: "1"},
		Data:       map[string]string{"config": walkthroughConfig},
	}
	svc := lbService("default", "web")
	svc.ResourceVersion = "7"
	cs := fake.NewClientset(cm, svc)
	var sentRV []string
	conflicts := 1
	cs.PrependReactor("update", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" {
			return false, nil, nil
		}
		obj := a.(k8stesting.UpdateAction).GetObject().(*corev1.Service)
		sentRV = append(sentRV, obj.ResourceVersion)
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "services"}, obj.Name, nil)
		}
		return false, nil, nil
	})
	c, err := New(Options{Client: cs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.svcFactory.Start(ctx.Done())
	c.cmFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		t.Fatal("caches did not sync")
	}
	c.restore()
	if err := c.syncConfig(ctx); err != nil {
		t.Fatal(err)
	}

	err = c.syncService(ctx, "default/web")
	if !apierrors.IsConflict(err) {
		t.Fatalf("sync with a conflicting write = %v, want a conflict error (so the key is requeued)", err)
	}
	if got, _ := cs.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{}); len(got.Status.LoadBalancer.Ingress) != 0 {
		t.Fatalf("status written despite the conflict: %v", got.Status.LoadBalancer.Ingress)
	}
	if err := c.syncService(ctx, "default/web"); err != nil {
		t.Fatalf("retry: %v", err)
	}
	got, _ := cs.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	if ingressIPs(got) != "172.18.255.200" {
		t.Fatalf("after the retry the status is %q", ingressIPs(got))
	}
	for i, rv := range sentRV {
		if rv == "" {
			t.Errorf("status write %d carried no resourceVersion: it would overwrite blindly", i)
		}
	}
	if len(sentRV) != 2 {
		t.Errorf("%d status writes, want 2", len(sentRV))
	}
}
