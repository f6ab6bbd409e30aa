package controller

import (
	"context"
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

// syncConfig loads the ConfigMap. A document that does not parse is reported (Event on the
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
	var released []string
	if err == nil {
		c.mu.Lock()
		released, err = c.alloc.SetPools(ipamPools(cfg))
		if err == nil {
			c.cfg = cfg
		}
		c.mu.Unlock()
	}
	if err != nil {
		c.metrics.config.Rejected()
		c.log.Error("rejected configuration; the last good one stays in force", "configmap", c.opts.Namespace+"/"+c.opts.ConfigName, "error", err)
		c.recorder.Eventf(cm, corev1.EventTypeWarning, ReasonConfigInvalid, "configuration rejected, the last good one stays in force: %v", err)
		return nil
	}
	c.metrics.config.Accepted()
	c.log.Info("configuration loaded", "pools", len(cfg.Pools), "peers", len(cfg.Peers), "released", len(released))
	c.recorder.Eventf(cm, corev1.EventTypeNormal, ReasonConfigLoaded, "configuration loaded: %d address pools", len(cfg.Pools))

	c.mu.Lock()
	for _, key := range released {
		c.reassign[key] = "its address left every address pool in the new configuration"
	}
	c.mu.Unlock()
	// Any Service may be affected: pending ones may now fit, pool annotations may now resolve.
	c.enqueueAll()
	return nil
}

func (c *Controller) parse(cm *corev1.ConfigMap) (*config.Config, error) {
	data, ok := cm.Data[c.opts.ConfigKey]
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s/%s has no key %q", cm.Namespace, cm.Name, c.opts.ConfigKey)
	}
	return config.Parse([]byte(data))
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

	in, req, err := allocationInput(svc)
	if err != nil {
		c.fail(svc, err.Error())
		return nil
	}
	current := svcinfo.StatusIPs(svc)

	c.mu.Lock()
	if c.cfg == nil {
		c.mu.Unlock()
		c.fail(svc, fmt.Sprintf("no configuration loaded: ConfigMap %s/%s is missing or invalid", c.opts.Namespace, c.opts.ConfigName))
		return nil
	}
	why := c.reassign[key]
	_, known := c.alloc.Get(key)
	if !known && len(current) > 0 {
		// The status holds addresses the allocator does not know (the first sync after a
		// restore failure, or a config change that released them): claim them again if that is
		// still possible, so the Service keeps its address.
		if _, err := c.alloc.Assign(in, current); err != nil {
			if why == "" {
				why = fmt.Sprintf("its address %s can no longer be used: %v", joinAddrs(current), err)
			}
		}
	}
	asg, allocErr := c.alloc.Allocate(in, req)
	if allocErr == nil {
		delete(c.pending, key)
		delete(c.reassign, key)
	} else {
		c.pending[key] = true
	}
	c.mu.Unlock()

	if allocErr != nil {
		c.fail(svc, allocErr.Error())
		if why != "" && len(current) > 0 {
			// The old address is no longer ours to give; leaving it in the status would keep
			// traffic flowing to an address that may be handed to somebody else.
			return c.writeStatus(ctx, svc, nil)
		}
		return nil
	}

	ips := append([]netip.Addr(nil), asg.IPs...)
	svcinfo.SortAddrs(ips)
	if sameAddrs(ips, current) {
		return nil
	}
	if err := c.writeStatus(ctx, svc, ips); err != nil {
		return err
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
		return nil
	}
	c.mu.Lock()
	ours := c.cfg != nil && c.cfg.PoolFor(current[0]) != nil
	c.mu.Unlock()
	if !ours {
		return nil
	}
	return c.writeStatus(ctx, svc, nil)
}

// release returns key's addresses to their pool and retries the Services waiting for one.
func (c *Controller) release(key string, svc *corev1.Service) {
	c.mu.Lock()
	asg, had := c.alloc.Get(key)
	if had {
		c.alloc.Release(key)
	}
	delete(c.reassign, key)
	delete(c.pending, key)
	retry := make([]string, 0, len(c.pending))
	for k := range c.pending {
		retry = append(retry, k)
	}
	c.mu.Unlock()
	if !had {
		return
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

// writeStatus replaces the Service's ingress list with ips (nil clears it).
func (c *Controller) writeStatus(ctx context.Context, svc *corev1.Service, ips []netip.Addr) error {
	updated := svc.DeepCopy()
	if ips == nil {
		updated.Status.LoadBalancer = corev1.LoadBalancerStatus{}
	} else {
		updated.Status.LoadBalancer.Ingress = ingressFor(ips)
	}
	_, err := c.client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("updating status of %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}
