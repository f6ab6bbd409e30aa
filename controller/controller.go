package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/internal/svcinfo"
	"github.com/ironlb/ironlb/ipam"
)

// Event reasons recorded on Services and on the ConfigMap.
const (
	ReasonIPAllocated      = "IPAllocated"
	ReasonAllocationFailed = "AllocationFailed"
	ReasonIPReleased       = "IPReleased"
	ReasonConfigLoaded     = "ConfigLoaded"
	ReasonConfigInvalid    = "ConfigInvalid"
)

// configKey is the workqueue key of the ConfigMap; it cannot collide with a "namespace/name" key.
const configKey = "\x00config"

// Options configure a Controller. Client is required; the rest have working defaults.
type Options struct {
	Client     kubernetes.Interface
	Namespace  string // namespace of the ConfigMap, default metallb-system
	ConfigName string // name of the ConfigMap, default config
	ConfigKey  string // key inside the ConfigMap, default config
	LBClass    string // handle Services of this loadBalancerClass; "" handles Services without one
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
	Resync     time.Duration         // informer resync period, default 10m
}

// Controller assigns addresses to LoadBalancer Services. Create it with New and start it with Run.
type Controller struct {
	opts     Options
	log      *slog.Logger
	client   kubernetes.Interface
	metrics  *metrics
	recorder record.EventRecorder
	events   record.EventBroadcaster

	svcFactory informers.SharedInformerFactory
	cmFactory  informers.SharedInformerFactory
	services   corelisters.ServiceLister
	configMaps corelisters.ConfigMapLister
	synced     []cache.InformerSynced
	queue      workqueue.TypedRateLimitingInterface[string]

	ready atomic.Bool

	mu      sync.Mutex // guards the fields below; held only for bookkeeping, never during API calls
	alloc   *ipam.Allocator
	cfg     *config.Config  // the configuration in force (last good one); nil until one loaded
	cfgRV   string          // resourceVersion of the ConfigMap last looked at
	pending map[string]bool // Services waiting for an address; retried when addresses free up
	// refused: the latest ConfigMap was valid but would take assigned addresses away; it is
	// looked at again whenever a Service lets go of an address.
	refused bool

	noAnnotations atomic.Bool // updating Services is forbidden (MetalLB v0.12's RBAC)
}

// New wires informers, the workqueue and the event recorder. Nothing runs until Run.
func New(opts Options) (*Controller, error) {
	if opts.Client == nil {
		return nil, errors.New("controller: Options.Client is required")
	}
	if opts.Namespace == "" {
		opts.Namespace = "metallb-system"
	}
	if opts.ConfigName == "" {
		opts.ConfigName = "config"
	}
	if opts.ConfigKey == "" {
		opts.ConfigKey = "config"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Resync == 0 {
		opts.Resync = 10 * time.Minute
	}
	c := &Controller{
		opts:    opts,
		log:     opts.Logger,
		client:  opts.Client,
		metrics: newMetrics(opts.Registerer),
		alloc:   ipam.New(),
		pending: map[string]bool{},
	}
	c.events = record.NewBroadcaster()
	c.recorder = c.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "ironlb-controller"})

	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "ironlb_controller"},
	)

	c.svcFactory = informers.NewSharedInformerFactory(opts.Client, opts.Resync)
	svcInformer := c.svcFactory.Core().V1().Services()
	c.services = svcInformer.Lister()
	_, err := svcInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueService,
		UpdateFunc: func(_, obj any) { c.enqueueService(obj) },
		DeleteFunc: c.enqueueService,
	})
	if err != nil {
		return nil, fmt.Errorf("controller: service handler: %w", err)
	}

	c.cmFactory = informers.NewSharedInformerFactoryWithOptions(opts.Client, opts.Resync,
		informers.WithNamespace(opts.Namespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", opts.ConfigName).String()
		}))
	cmInformer := c.cmFactory.Core().V1().ConfigMaps()
	c.configMaps = cmInformer.Lister()
	enqueueConfig := func(any) { c.queue.Add(configKey) }
	_, err = cmInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueConfig,
		UpdateFunc: func(_, obj any) { enqueueConfig(obj) },
		DeleteFunc: enqueueConfig,
	})
	if err != nil {
		return nil, fmt.Errorf("controller: configmap handler: %w", err)
	}
	c.synced = []cache.InformerSynced{svcInformer.Informer().HasSynced, cmInformer.Informer().HasSynced}
	return c, nil
}

func (c *Controller) enqueueService(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		runtime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

// Ready reports whether the controller has restored the existing assignments and is serving.
func (c *Controller) Ready() bool { return c.ready.Load() }

// Run starts the informers, restores the addresses already in Service statuses, then processes
// the queue with the given number of workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer runtime.HandleCrash()
	defer c.queue.ShutDown()
	if workers < 1 {
		workers = 1
	}
	defer c.metrics.register(c.poolMetrics)()
	c.events.StartStructuredLogging(0)
	c.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer c.events.Shutdown()

	c.svcFactory.Start(ctx.Done())
	c.cmFactory.Start(ctx.Done())
	defer c.svcFactory.Shutdown()
	defer c.cmFactory.Shutdown()

	c.log.Info("waiting for informer caches")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("controller: caches did not sync: %w", ctx.Err())
	}

	// Order matters: every address already handed out is claimed first, with or without a
	// valid configuration, so that no configuration and no allocation can take it; then the
	// configuration (which must home every claimed address); only then new allocations.
	c.restore()
	if err := c.syncConfig(ctx); err != nil {
		c.log.Error("initial configuration", "error", err)
	}
	c.ready.Store(true)

	for range workers {
		go func() {
			for c.processNextWorkItem(ctx) {
			}
		}()
	}
	c.enqueueAll()
	c.log.Info("controller started", "workers", workers)
	<-ctx.Done()
	c.log.Info("controller stopping")
	return nil
}

func (c *Controller) processNextWorkItem(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	var err error
	if key == configKey {
		err = c.syncConfig(ctx)
	} else {
		err = c.syncService(ctx, key)
	}
	if apierrors.IsConflict(err) {
		// The decision was made on a cache older than the object (typically our own previous
		// write, annotation then status, not yet seen): nothing failed, decide again on fresh
		// data.
		c.metrics.config.Synced(nil)
		c.log.Debug("object changed since it was read, syncing again", "key", printableKey(key), "error", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.metrics.config.Synced(err)
	if err != nil {
		c.log.Warn("sync failed, will retry", "key", printableKey(key), "error", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

func printableKey(key string) string {
	if key == configKey {
		return "configmap"
	}
	return key
}

// restore claims, in a deterministic order (oldest Service first), every address already
// written in the status of a Service ironlb handles, so that nothing allocated later can take
// it. It needs no configuration and ignores the Services' requests: a malformed request gets
// an Event, but the address stays the Service's own. Only an older Service holding the same
// address without sharing it can make a claim fail (a duplicate from before); that Service is
// re-assigned by its sync.
func (c *Controller) restore() {
	svcs, err := c.services.List(everything)
	if err != nil {
		c.log.Error("listing services for restore", "error", err)
		return
	}
	sort.Slice(svcs, func(i, j int) bool {
		ti, tj := svcs[i].CreationTimestamp, svcs[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return svcs[i].Namespace+"/"+svcs[i].Name < svcs[j].Namespace+"/"+svcs[j].Name
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	restored, failed := 0, 0
	for _, svc := range svcs {
		if !svcinfo.Handled(svc, c.opts.LBClass) {
			continue
		}
		ips := svcinfo.StatusIPs(svc)
		if len(ips) == 0 {
			continue
		}
		id := serviceIdentity(svc)
		if _, err := c.alloc.Reserve(id, ips); err != nil {
			failed++
			c.log.Warn("could not restore address; the service will be re-assigned", "service", id.Key, "ips", joinAddrs(ips), "error", err)
			continue
		}
		restored++
	}
	c.log.Info("restored existing assignments", "restored", restored, "failed", failed)
}

func (c *Controller) enqueueAll() {
	svcs, err := c.services.List(everything)
	if err != nil {
		c.log.Error("listing services", "error", err)
		return
	}
	for _, svc := range svcs {
		c.queue.Add(svc.Namespace + "/" + svc.Name)
	}
}
