package apitest

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStartServesTheAPI(t *testing.T) {
	srv := Start(t)
	cs := srv.Client(t, "apitest")
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "metallb-system"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	got, err := cs.CoreV1().Namespaces().Get(ctx, "metallb-system", metav1.GetOptions{})
	if err != nil || got.Name != "metallb-system" {
		t.Fatalf("get namespace: %v %v", got, err)
	}
}
