package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/internal/svcinfo"
	"github.com/ironlb/ironlb/ipam"
)

var everything = labels.Everything()

// syncConfig loads the ConfigMap. A document that does not parse, or a valid one under which an
// assigned address would leave every pool or become unusable, is reported (Event on the
// ConfigMap, log, metallb_k8s_client_config_stale_bool) and the configuration in force stays.
func (c *Controller) syncConfig(ctx context.Context) error {
	cm, err := c.configMaps.ConfigMaps(c.opts.Namespace).Get(c.opts.ConfigName)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		loaded := c.cfg != nil
		c.mu.Unlock()
		if loaded {
			// Dropping every pool would strip every Service of its address; a deleted ConfigMap is
			// far more likely a mistake than an intent to do that.
			c.log.Warn("ConfigMap deleted; keeping the last good configuration", "configmap", c.opts.Namespace+"/"+c.opts.ConfigName)
			c.metrics.config.Rejected()
		} else {
			c.log.Warn("ConfigMap not found; no address pools until it is created", "configmap", c.opts.Namespace+"/"+c.opts.ConfigName)
		}
		return nil
	}
	if err != nil {
		return err
	}

	c.mu.Lock()
	if cm.ResourceVersion == c.cfgRV {
		c.mu.Unlock()
		return nil
	}
	c.cfgRV = cm.ResourceVersion
	c.mu.Unlock()

	cfg, err := c.parse(cm)
	if err == nil {
		c.mu.Lock()
		err = c.alloc.SetPools(ipamPools(cfg))
		if err == nil {
			c.cfg = cfg
			c.refused = false
		} else if errors.Is(err, ipam.ErrWouldRelease) {
			// Looked at again when a Service lets go of an address, so that the configuration
			// applies as soon as the Services in its way are moved or deleted.
			c.refused = true
			c.cfgRV = ""
		}
		c.mu.Unlock()
	}
	if err != nil {
		c.metrics.config.Rejected()
		msg := fmt.Sprintf("configuration rejected, the last good one stays in force: %v", err)
		if errors.Is(err, ipam.ErrWouldRelease) {
			msg += ". Move those Services to addresses the new configuration keeps (or delete them) first, then apply it again"
		}
		c.log.Error("rejected configuration; the last good one stays in force", "configmap", c.opts.Namespace+"/"+c.opts.ConfigName, "error", err)
		c.recorder.Event(cm, corev1.EventTypeWarning, ReasonConfigInvalid, msg)
		return nil
	}
	c.metrics.config.Accepted()
	c.log.Info("configuration loaded", "pools", len(cfg.Pools), "peers", len(cfg.Peers))
	c.recorder.Eventf(cm, corev1.EventTypeNormal, ReasonConfigLoaded, "configuration loaded: %d address pools", len(cfg.Pools))

	// Any Service may be affected: pending ones may now fit, pool annotations may now resolve.
	c.enqueueAll()
	return nil
}

// parse reads the configuration from the ConfigMap. A ConfigMap without the key is an empty
// configuration, as in MetalLB (and, like any other, may not take assigned addresses away).
func (c *Controller) parse(cm *corev1.ConfigMap) (*config.Config, error) {
	return config.FromData(cm.Data, c.opts.ConfigKey)
}

func ipamPools(cfg *config.Config) []ipam.Pool {
	pools := make([]ipam.Pool, 0, len(cfg.Pools))
	for _, p := range cfg.Pools {
		pools = append(pools, ipam.Pool{
			Name:          p.Name,
			Ranges:        p.Ranges,
			AutoAssign:    p.AutoAssign,
			AvoidBuggyIPs: p.AvoidBuggyIPs,
		})
	}
	return pools
}

// syncService brings one Service's status in line with its allocation.
func (c *Controller) syncService(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.release(key, nil)
		return nil
	}
	if err != nil {
		return err
	}

	if !svcinfo.Handled(svc, c.opts.LBClass) {
		return c.syncNotOurs(ctx, key, svc)
	}

	current := svcinfo.StatusIPs(svc)
	id := serviceIdentity(svc)
	req, reqErr := allocationRequest(svc)

	c.mu.Lock()
	_, known := c.alloc.Get(key)
	if !known && len(current) > 0 && (c.cfg == nil || reqErr != nil) {
		// Addresses in the status stay this Service's own while nothing deliberate frees them
		// (normally restore has claimed them already).
		if _, err := c.alloc.Reserve(id, current); err != nil {
			c.log.Warn("could not keep the address in the status", "service", key, "ips", joinAddrs(current), "error", err)
		}
	}
	if reqErr != nil {
		c.mu.Unlock()
		reason := reqErr.Error()
		if len(current) > 0 {
			reason += fmt.Sprintf("; it keeps %s until the request is fixed", joinAddrs(current))
		}
		c.fail(svc, reason)
		return nil
	}
	if c.cfg == nil {
		c.mu.Unlock()
		reason := fmt.Sprintf("no configuration loaded: ConfigMap %s/%s is missing or invalid", c.opts.Namespace, c.opts.ConfigName)
		if len(current) > 0 {
			reason += fmt.Sprintf("; it keeps %s", joinAddrs(current))
		}
		c.fail(svc, reason)
		return nil
	}
	var why string
	if !known && len(current) > 0 {
		// The status holds addresses the allocator does not know: a Service that just became
		// ours (type or class changed) with a status another implementation wrote. Claim them
		// if that is possible, so the Service keeps its address.
		if _, err := c.alloc.Assign(id, current); err != nil {
			why = fmt.Sprintf("its address %s cannot be used: %v", joinAddrs(current), err)
		}
	}
	asg, allocErr := c.allocate(id, req)
	if allocErr == nil {
		delete(c.pending, key)
	} else {
		c.pending[key] = true
	}
	retryConfig := c.refused && allocErr == nil && !sameAddrs(asg.IPs, current)
	c.mu.Unlock()
	if retryConfig {
		c.queue.Add(configKey)
	}

	if allocErr != nil {
		c.fail(svc, allocErr.Error())
		if why != "" {
			// Those addresses are not ours to give; leaving them in the status would keep
			// traffic flowing to an address that may be handed to somebody else.
			return c.writeStatus(ctx, svc, nil, "")
		}
		return nil
	}

	ips := append([]netip.Addr(nil), asg.IPs...)
	svcinfo.SortAddrs(ips)
	if sameAddrs(ips, current) && svc.Annotations[poolAllocatedAnnotation] == asg.Pool {
		return nil
	}
	if err := c.writeStatus(ctx, svc, ips, asg.Pool); err != nil {
		return err
	}
	if sameAddrs(ips, current) {
		return nil
	}
	msg := fmt.Sprintf("Assigned IP [%s] from pool %s", joinAddrs(ips), asg.Pool)
	if len(current) > 0 {
		reason := why
		if reason == "" {
			reason = "its request changed"
		}
		msg = fmt.Sprintf("%s, replacing %s because %s", msg, joinAddrs(current), reason)
	}
	c.recorder.Event(svc, corev1.EventTypeNormal, ReasonIPAllocated, msg)
	c.log.Info("assigned", "service", key, "ips", joinAddrs(ips), "pool", asg.Pool, "previous", joinAddrs(current))
	return nil
}

// allocate asks the allocator for req; a PreferDualStack request falls back to one family (in
// the Service's order) when no pool serves both. The caller holds c.mu.
func (c *Controller) allocate(id ipam.Service, req allocRequest) (ipam.Assignment, error) {
	asg, err := c.alloc.Allocate(id, req.Request)
	if err == nil || !req.PreferDualStack || !errors.Is(err, ipam.ErrFamily) {
		return asg, err
	}
	for _, f := range req.Families {
		single := req.Request
		single.Families = []ipam.Family{f}
		if a, ferr := c.alloc.Allocate(id, single); ferr == nil {
			return a, nil
		}
	}
	return asg, err
}

// syncNotOurs handles a Service that is not (or no longer) a LoadBalancer of our class: its
// address goes back to the pool, and a status we wrote is cleared.
func (c *Controller) syncNotOurs(ctx context.Context, key string, svc *corev1.Service) error {
	c.release(key, svc)
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		// Another controller's class: its status is not ours to touch.
		return nil
	}
	current := svcinfo.StatusIPs(svc)
	if len(current) == 0 {
		_, err := c.writePoolAnnotation(ctx, svc, "")
		return err
	}
	c.mu.Lock()
	ours := c.cfg != nil && c.cfg.PoolFor(current[0]) != nil
	c.mu.Unlock()
	if !ours {
		return nil
	}
	return c.writeStatus(ctx, svc, nil, "")
}

// release returns key's addresses to their pool and retries the Services waiting for one.
func (c *Controller) release(key string, svc *corev1.Service) {
	c.mu.Lock()
	asg, had := c.alloc.Get(key)
	if had {
		c.alloc.Release(key)
	}
	delete(c.pending, key)
	retry := make([]string, 0, len(c.pending))
	for k := range c.pending {
		retry = append(retry, k)
	}
	retryConfig := had && c.refused
	c.mu.Unlock()
	if !had {
		return
	}
	if retryConfig {
		c.queue.Add(configKey)
	}
	c.log.Info("released", "service", key, "ips", joinAddrs(asg.IPs))
	if svc != nil {
		c.recorder.Eventf(svc, corev1.EventTypeNormal, ReasonIPReleased, "Released IP [%s]: the Service is no longer a LoadBalancer handled by ironlb", joinAddrs(asg.IPs))
	}
	for _, k := range retry {
		c.queue.Add(k)
	}
}

func (c *Controller) fail(svc *corev1.Service, reason string) {
	c.log.Warn("allocation failed", "service", svc.Namespace+"/"+svc.Name, "reason", reason)
	c.recorder.Event(svc, corev1.EventTypeWarning, ReasonAllocationFailed, "Failed to allocate IP for "+svc.Namespace+"/"+svc.Name+": "+reason)
}

// writeStatus replaces the Service's ingress list with ips (nil clears it) and records the
// pool in the metallb.io/ip-allocated-from-pool annotation ("" removes it). Both writes carry
// the resourceVersion the decision was made on, so a concurrent change makes them fail with a
// conflict and the Service is synced again rather than overwritten.
func (c *Controller) writeStatus(ctx context.Context, svc *corev1.Service, ips []netip.Addr, pool string) error {
	svc, err := c.writePoolAnnotation(ctx, svc, pool)
	if err != nil {
		return err
	}
	updated := svc.DeepCopy()
	if ips == nil {
		updated.Status.LoadBalancer = corev1.LoadBalancerStatus{}
	} else {
		updated.Status.LoadBalancer.Ingress = ingressFor(ips)
	}
	if sameAddrs(svcinfo.StatusIPs(svc), ips) && len(svc.Status.LoadBalancer.Ingress) == len(ips) {
		return nil
	}
	_, err = c.client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("updating status of %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}

// writePoolAnnotation sets (or, for "", removes) the annotation naming the pool and drops the
// deprecated metallb.universe.tf one, as current MetalLB does. Without RBAC to update Services
// (MetalLB v0.12's manifests grant only services/status) it says so once and goes on.
func (c *Controller) writePoolAnnotation(ctx context.Context, svc *corev1.Service, pool string) (*corev1.Service, error) {
	_, deprecated := svc.Annotations[deprecatedPoolAllocatedAnnotation]
	if svc.Annotations[poolAllocatedAnnotation] == pool && !deprecated || c.noAnnotations.Load() {
		return svc, nil
	}
	updated := svc.DeepCopy()
	if pool == "" {
		if _, ok := updated.Annotations[poolAllocatedAnnotation]; !ok && !deprecated {
			return svc, nil
		}
		delete(updated.Annotations, poolAllocatedAnnotation)
	} else {
		if updated.Annotations == nil {
			updated.Annotations = map[string]string{}
		}
		updated.Annotations[poolAllocatedAnnotation] = pool
	}
	delete(updated.Annotations, deprecatedPoolAllocatedAnnotation)
	out, err := c.client.CoreV1().Services(svc.Namespace).Update(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsForbidden(err) {
		if c.noAnnotations.CompareAndSwap(false, true) {
			// The error text is the API server's "forbidden" message; what matters is said here.
			c.log.Warn("not allowed to update Services (MetalLB v0.12's RBAC grants only services/status): the " + poolAllocatedAnnotation + " annotation is not written; grant update on services to enable it")
		}
		return svc, nil
	}
	if err != nil {
		return nil, fmt.Errorf("annotating %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return out, nil
}
