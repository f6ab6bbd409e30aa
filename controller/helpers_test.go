package controller

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/ironlb/ironlb/internal/apitest"
)

const walkthroughConfig = `
address-pools:
- name: default
  protocol: layer2
  addresses:
  - 172.18.255.200-172.18.255.250
`

// env is one real API server with the metallb-system namespace.
type env struct {
	srv *apitest.Server
	cs  kubernetes.Interface
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := apitest.Start(t)
	e := &env{srv: srv, cs: srv.Client(t, "ironlb-test")}
	e.createNamespace(t, "metallb-system")
	return e
}

func (e *env) createNamespace(t *testing.T, name string) {
	t.Helper()
	_, err := e.cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// startController runs a controller until the test ends (or until the returned stop is called)
// and waits until it has restored existing assignments.
func (e *env) startController(t *testing.T, mutate func(*Options)) (stop func()) {
	t.Helper()
	opts := Options{
		Client: e.srv.Client(t, "ironlb-controller"),
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if mutate != nil {
		mutate(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(ctx, 2); err != nil {
			t.Errorf("controller: %v", err)
		}
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	waitFor(t, "controller ready", func() (bool, string) { return c.Ready(), "not ready" })
	return stop
}

// testWriter sends log lines to t.Log so they show only for failing tests (or -v).
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if os.Getenv("IRONLB_TEST_LOGS") != "" {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (e *env) applyConfig(t *testing.T, data string) {
	t.Helper()
	ctx := context.Background()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: "config"},
		Data:       map[string]string{"config": data},
	}
	cms := e.cs.CoreV1().ConfigMaps("metallb-system")
	existing, err := cms.Get(ctx, "config", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	case err == nil:
		existing.Data = cm.Data
		_, err = cms.Update(ctx, existing, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("apply config: %v", err)
	}
}

// lbService returns a LoadBalancer Service like the walkthrough's, port 80 → 8080.
func lbService(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{
				Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080),
			}},
		},
	}
}

func (e *env) create(t *testing.T, svc *corev1.Service) {
	t.Helper()
	if _, err := e.cs.CoreV1().Services(svc.Namespace).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service %s/%s: %v", svc.Namespace, svc.Name, err)
	}
}

func (e *env) get(t *testing.T, ns, name string) *corev1.Service {
	t.Helper()
	svc, err := e.cs.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get service %s/%s: %v", ns, name, err)
	}
	return svc
}

func ingressIPs(svc *corev1.Service) string {
	var ips []string
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		ips = append(ips, ing.IP)
	}
	return strings.Join(ips, ",")
}

// waitIPs waits until the Service's status lists exactly want (comma-separated, "" for none).
func (e *env) waitIPs(t *testing.T, ns, name, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s/%s ingress %q", ns, name, want), func() (bool, string) {
		got := ingressIPs(e.get(t, ns, name))
		return got == want, "ingress is " + got
	})
}

// waitEvent waits for an Event on the object with the reason and a message containing substr.
func (e *env) waitEvent(t *testing.T, ns, name, reason, substr string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("event %s on %s/%s containing %q", reason, ns, name, substr), func() (bool, string) {
		evs, err := e.cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + name,
		})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, ev := range evs.Items {
			if ev.Reason == reason && strings.Contains(ev.Message, substr) {
				return true, ""
			}
			seen = append(seen, ev.Reason+": "+ev.Message)
		}
		return false, "events: " + strings.Join(seen, " | ")
	})
}

// holdIPs asserts that the Service keeps exactly want for a while (used to show nothing happens).
func (e *env) holdIPs(t *testing.T, ns, name, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if got := ingressIPs(e.get(t, ns, name)); got != want {
			t.Fatalf("%s/%s ingress changed to %q, want it to stay %q", ns, name, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}
