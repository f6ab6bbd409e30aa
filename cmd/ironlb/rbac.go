package main

// MetalLB v0.12's manifest grants less than ironlb's own: the speaker may list its pods but not
// watch them, the controller may not use Leases. Rather than failing (or logging a forbidden
// watch every few seconds), the components ask the API server once at start what they may do
// and fall back: the speaker polls the pod list, the controller runs without leader election.

import (
	"context"
	"log/slog"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// podPollInterval is how stale the speaker's view of the other speaker pods may get when it
// cannot watch them; it only finds memberlist seeds there, and memberlist itself notices
// members joining and leaving within a second.
const podPollInterval = 5 * time.Second

// mayDo asks the API server (SelfSubjectAccessReview, allowed to every authenticated user)
// whether this process may perform verb on resource (of group) in ns. When the question
// itself fails, it answers true: the component then behaves as it would without the check.
func mayDo(ctx context.Context, client kubernetes.Interface, ns, group, resource, verb string) bool {
	r, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Group: group, Resource: resource, Verb: verb,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		return true
	}
	return r.Status.Allowed
}

// leasesAllowed reports whether the controller may run leader election in ns; when it may not
// (MetalLB's RBAC), it logs once why the controller runs unelected.
func leasesAllowed(ctx context.Context, client kubernetes.Interface, ns string, logger *slog.Logger) bool {
	for _, verb := range []string{"get", "create", "update"} {
		if !mayDo(ctx, client, ns, "coordination.k8s.io", "leases", verb) {
			logger.Warn("leader election off: the ServiceAccount may not "+verb+" Leases in "+ns+
				" (MetalLB's RBAC grants none); run a single controller replica, as MetalLB does",
				"namespace", ns)
			return false
		}
	}
	return true
}

// speakerClient returns client, or, when the speaker may list but not watch the pods of ns
// (MetalLB's RBAC), a client whose pod watches in ns are emulated by polling the list. Logs once
// when it falls back.
func speakerClient(ctx context.Context, client kubernetes.Interface, ns string, logger *slog.Logger) kubernetes.Interface {
	if mayDo(ctx, client, ns, "", "pods", "watch") || !mayDo(ctx, client, ns, "", "pods", "list") {
		return client
	}
	logger.Warn("the ServiceAccount may list but not watch the speaker pods (MetalLB's RBAC): polling them",
		"namespace", ns, "interval", podPollInterval)
	return &podPollingClient{Interface: client, ns: ns, interval: podPollInterval, seen: map[string]map[types.UID]*corev1.Pod{}}
}

// podPollingClient is a clientset whose Pods(ns).Watch is emulated: each watch waits one
// interval, lists again and reports the difference to the previous list of the same selectors
// as events, then ends; the reflector then simply watches again. Nothing else changes.
type podPollingClient struct {
	kubernetes.Interface
	ns       string
	interval time.Duration

	mu   sync.Mutex
	seen map[string]map[types.UID]*corev1.Pod // by selectors: the pods of the last list
}

func (c *podPollingClient) CoreV1() corev1client.CoreV1Interface {
	return pollingCoreV1{CoreV1Interface: c.Interface.CoreV1(), c: c}
}

type pollingCoreV1 struct {
	corev1client.CoreV1Interface
	c *podPollingClient
}

func (p pollingCoreV1) Pods(ns string) corev1client.PodInterface {
	pods := p.CoreV1Interface.Pods(ns)
	if ns != p.c.ns {
		return pods
	}
	return pollingPods{PodInterface: pods, c: p.c}
}

type pollingPods struct {
	corev1client.PodInterface
	c *podPollingClient
}

func selectorsKey(o metav1.ListOptions) string { return o.LabelSelector + "\x00" + o.FieldSelector }

// remember stores a list as the state the next watch compares with, and returns the events
// that turn the previous state into it.
func (c *podPollingClient) remember(key string, items []corev1.Pod) []watch.Event {
	now := make(map[types.UID]*corev1.Pod, len(items))
	for i := range items {
		now[items[i].UID] = &items[i]
	}
	c.mu.Lock()
	before, known := c.seen[key]
	c.seen[key] = now
	c.mu.Unlock()
	if !known {
		return nil
	}
	var events []watch.Event
	for uid, p := range now {
		switch old, ok := before[uid]; {
		case !ok:
			events = append(events, watch.Event{Type: watch.Added, Object: p})
		case old.ResourceVersion != p.ResourceVersion:
			events = append(events, watch.Event{Type: watch.Modified, Object: p})
		}
	}
	for uid, old := range before {
		if _, ok := now[uid]; !ok {
			events = append(events, watch.Event{Type: watch.Deleted, Object: old})
		}
	}
	return events
}

func (p pollingPods) List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	l, err := p.PodInterface.List(ctx, opts)
	if err == nil && opts.Continue == "" && l.Continue == "" { // a whole list, not one page
		p.c.remember(selectorsKey(opts), l.Items)
	}
	return l, err
}

// errNoWatchList makes the reflector fall back from a streaming list (watch with initial
// events) to a plain list, which it does without logging above debug level.
type errNoWatchList struct{}

func (errNoWatchList) Error() string { return "pods are polled, not watched: no watch-list" }

func (p pollingPods) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
		return nil, errNoWatchList{}
	}
	ch := make(chan watch.Event)
	w := watch.NewProxyWatcher(ch)
	go func() {
		defer close(ch)
		select {
		case <-time.After(p.c.interval):
		case <-ctx.Done():
			return
		case <-w.StopChan():
			return
		}
		lo := metav1.ListOptions{LabelSelector: opts.LabelSelector, FieldSelector: opts.FieldSelector}
		l, err := p.PodInterface.List(ctx, lo)
		if err != nil {
			return // the next watch lists again
		}
		for _, ev := range p.c.remember(selectorsKey(lo), l.Items) {
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			case <-w.StopChan():
				return
			}
		}
	}()
	return w, nil
}
