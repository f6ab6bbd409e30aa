package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/ironlb/ironlb/bgp"
	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/layer2"
	"github.com/ironlb/ironlb/membership"
)

// Event reasons recorded on Services.
const (
	ReasonNodeAssigned     = "nodeAssigned"
	ReasonDuplicateOwner   = "DuplicateAnnouncer"
	ReasonYielded          = "AnnouncementYielded"
	ReasonConfigInvalid    = "ConfigInvalid"
	excludeFromLBLabel     = "node.kubernetes.io/exclude-from-external-load-balancers"
	serviceNameLabel       = discoveryv1.LabelServiceName
	defaultRestartGrace    = 3 * time.Second
	periodicReconcileEvery = 30 * time.Second
	// initialJoinTimeout bounds the wait for the other speakers before the first decision.
	initialJoinTimeout = 3 * time.Second
	// hostProbeTimeout: a live host refuses a connection in well under a millisecond on a LAN;
	// a cut link never answers. Every real failure waits this long before its IPs move.
	hostProbeTimeout = 100 * time.Millisecond
	// defaultRejoinInterval: how often missing speakers known from the API are joined again,
	// which bounds how long two nodes may answer for an IP after a partition heals.
	defaultRejoinInterval = time.Second
	// standbyGossipTimeout bounds the wait for the others to hear that this speaker's
	// candidacy changed (it has, or no longer lacks, a configuration).
	standbyGossipTimeout = time.Second
)

// Options configure a Speaker.
type Options struct {
	Client     kubernetes.Interface
	NodeName   string
	Namespace  string // of the ConfigMap and the speaker pods
	ConfigName string
	ConfigKey  string
	LBClass    string
	// IgnoreExcludeLB: announce from nodes labelled
	// node.kubernetes.io/exclude-from-external-load-balancers too (MetalLB's --ignore-exclude-lb).
	IgnoreExcludeLB bool

	// Memberlist.
	BindAddr      netip.Addr // the node IP
	BindPort      int
	SpeakerLabels string // label selector of the speaker pods, to find the other members
	Secret        []byte // raw Secret value; empty requires Insecure
	// ExtraSecrets are Secret values accepted besides Secret, during a key rotation (see the
	// membership package).
	ExtraSecrets   [][]byte
	Insecure       bool
	MemberTimings  membership.Timings
	RejoinInterval time.Duration
	// RestartGrace keeps a speaker that crashed (not left) on a host that still answers as a
	// candidate for this long, so a container restart does not move its IPs away and back.
	RestartGrace time.Duration

	Interfaces []string // layer-2 interfaces; empty = all suitable ones
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Speaker announces the LoadBalancer IPs this node is responsible for.
type Speaker struct {
	opts    Options
	log     *slog.Logger
	client  kubernetes.Interface
	metrics *metrics

	factory    informers.SharedInformerFactory
	nsFactory  informers.SharedInformerFactory
	cmFactory  informers.SharedInformerFactory
	services   corelisters.ServiceLister
	slices     discoverylisters.EndpointSliceLister
	nodes      corelisters.NodeLister
	pods       corelisters.PodLister
	configMaps corelisters.ConfigMapLister
	synced     []cache.InformerSynced

	events   record.EventBroadcaster
	recorder record.EventRecorder

	members   *membership.Members
	announcer *layer2.Announcer
	bgp       *bgp.Speaker

	trigger chan struct{}
	ready   atomic.Bool
	// partitioned: some speaker known from the API is missing from memberlist, so a split brain
	// is possible and layer2 may yield an IP in a conflict (set at every decision).
	partitioned atomic.Bool

	mu    sync.Mutex
	cfg   *config.Config
	cfgRV string
	// pending is a parsed ConfigMap not applied because it would take an address away from a
	// Service; it is checked again at every decision. pendingWhy is what blocks it, as last
	// reported.
	pending    *config.Config
	pendingWhy string
	// byIP maps each announced IP to the Services announced with it, for the duplicate and
	// conflict Events (O(1) per report).
	byIP      map[netip.Addr][]string
	announced map[announcement]bool
	liveness  *membership.Liveness
	prevAlive map[string]bool // alive set of the previous decision (reconcile goroutine only)
	// unannounced: Services no node announces, with the reason (reconcile goroutine only).
	unannounced map[string]string
}

// New validates the options and wires informers. Nothing runs until Run.
func New(opts Options) (*Speaker, error) {
	if opts.Client == nil {
		return nil, errors.New("speaker: Options.Client is required")
	}
	if opts.NodeName == "" {
		return nil, errors.New("speaker: the node name is required (--node-name or env METALLB_NODE_NAME)")
	}
	if !opts.BindAddr.IsValid() {
		return nil, errors.New("speaker: the node IP is required (--ml-bind-addr or env METALLB_HOST)")
	}
	if n := len(opts.Secret); n > 0 && n < membership.MinSecretLength {
		return nil, fmt.Errorf(`speaker: the memberlist secret is %d bytes long, need at least %d: create it with
  kubectl create secret generic -n metallb-system memberlist --from-literal=secretkey="$(openssl rand -base64 128)"`, n, membership.MinSecretLength)
	}
	for i, k := range opts.ExtraSecrets {
		if len(k) < membership.MinSecretLength {
			return nil, fmt.Errorf("speaker: extra memberlist secret %d is %d bytes long, need at least %d", i, len(k), membership.MinSecretLength)
		}
	}
	if len(opts.Secret) == 0 && !opts.Insecure {
		return nil, errors.New(`speaker: no memberlist secret: create it with
  kubectl create secret generic -n metallb-system memberlist --from-literal=secretkey="$(openssl rand -base64 128)"
and pass it as env METALLB_ML_SECRET_KEY (the standard manifest does), or run with --ml-insecure`)
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
	if opts.SpeakerLabels == "" {
		opts.SpeakerLabels = "app=metallb,component=speaker"
	}
	if opts.RejoinInterval == 0 {
		opts.RejoinInterval = defaultRejoinInterval
	}
	if opts.RestartGrace == 0 {
		opts.RestartGrace = defaultRestartGrace
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	podSelector, err := labels.Parse(opts.SpeakerLabels)
	if err != nil {
		return nil, fmt.Errorf("speaker: --ml-labels %q: %w", opts.SpeakerLabels, err)
	}

	s := &Speaker{
		opts:      opts,
		log:       opts.Logger.With("node", opts.NodeName),
		client:    opts.Client,
		metrics:   newMetrics(opts.Registerer),
		trigger:   make(chan struct{}, 1),
		announced: map[announcement]bool{},
	}
	s.events = record.NewBroadcaster()
	s.recorder = s.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "ironlb-speaker", Host: opts.NodeName})

	resync := 10 * time.Minute
	s.factory = informers.NewSharedInformerFactory(opts.Client, resync)
	s.nsFactory = informers.NewSharedInformerFactoryWithOptions(opts.Client, resync,
		informers.WithNamespace(opts.Namespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = podSelector.String() }))
	s.cmFactory = informers.NewSharedInformerFactoryWithOptions(opts.Client, resync,
		informers.WithNamespace(opts.Namespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", opts.ConfigName).String()
		}))

	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(_, _ any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}
	svcInf := s.factory.Core().V1().Services()
	sliceInf := s.factory.Discovery().V1().EndpointSlices()
	nodeInf := s.factory.Core().V1().Nodes()
	podInf := s.nsFactory.Core().V1().Pods()
	cmInf := s.cmFactory.Core().V1().ConfigMaps()
	for _, inf := range []cache.SharedIndexInformer{svcInf.Informer(), sliceInf.Informer(), nodeInf.Informer(), podInf.Informer(), cmInf.Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, fmt.Errorf("speaker: event handler: %w", err)
		}
		s.synced = append(s.synced, inf.HasSynced)
	}
	s.services, s.slices, s.nodes, s.pods, s.configMaps = svcInf.Lister(), sliceInf.Lister(), nodeInf.Lister(), podInf.Lister(), cmInf.Lister()
	return s, nil
}

func (s *Speaker) poke() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Ready reports whether the speaker has synced, made its first decision and has a valid
// configuration (without one it is on standby: not a candidate, announcing nothing).
func (s *Speaker) Ready() bool {
	if !s.ready.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg != nil
}

// Run joins the speaker cluster and announces until ctx ends. On the way out it withdraws every
// announcement first, then leaves the cluster, so the next owner takes over while this node
// still forwards traffic.
func (s *Speaker) Run(ctx context.Context) error {
	s.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.client.CoreV1().Events("")})
	defer s.events.Shutdown()

	s.factory.Start(ctx.Done())
	s.nsFactory.Start(ctx.Done())
	s.cmFactory.Start(ctx.Done())
	defer s.factory.Shutdown()
	defer s.nsFactory.Shutdown()
	defer s.cmFactory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return fmt.Errorf("speaker: caches did not sync: %w", ctx.Err())
	}

	// Without a valid configuration this speaker would announce nothing: it joins on standby,
	// so that the others keep the IPs it would win.
	svcs, _ := s.services.List(labels.Everything())
	standby := s.loadConfig(svcs) == nil
	if standby {
		s.log.Warn("no valid configuration: joining the speakers on standby, not a candidate for any IP")
	}
	var err error
	s.members, err = membership.New(membership.Options{
		NodeName:        s.opts.NodeName,
		BindAddr:        s.opts.BindAddr,
		BindPort:        s.opts.BindPort,
		SecretKey:       s.opts.Secret,
		ExtraSecretKeys: s.opts.ExtraSecrets,
		Standby:         standby,
		Seeds:           s.seeds,
		RejoinInterval:  s.opts.RejoinInterval,
		Timings:         s.opts.MemberTimings,
		Logger:          s.log.With("component", "memberlist"),
	})
	if err != nil {
		return fmt.Errorf("speaker: memberlist: %w", err)
	}
	s.liveness = membership.NewLiveness(s.opts.NodeName, s.opts.RestartGrace, s.hostUp, s.members.Withdrawn, s.poke, s.log)
	s.announcer, err = layer2.NewAnnouncer(layer2.Options{
		Interfaces:       s.opts.Interfaces,
		Logger:           s.log.With("component", "layer2"),
		Metrics:          layer2.NewMetrics(s.opts.Registerer),
		OnDuplicate:      s.onDuplicate,
		ResolveConflicts: true,
		MayYield:         s.partitioned.Load,
		OnYield:          s.onYield,
	})
	if err != nil {
		return fmt.Errorf("speaker: layer2: %w", err)
	}
	routerID := s.opts.BindAddr
	if !routerID.Is4() {
		routerID = netip.Addr{}
	}
	s.bgp, err = bgp.New(bgp.Options{
		RouterID:   routerID,
		ListenPort: -1,
		Logger:     s.log.With("component", "bgp"),
		Metrics:    bgp.NewMetrics(s.opts.Registerer),
	})
	if err != nil {
		return fmt.Errorf("speaker: bgp: %w", err)
	}

	// The protocol engines and membership live until this function has withdrawn everything.
	engineCtx, stopEngines := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(engineCtx); err != nil {
				s.log.Error("component stopped", "component", name, "error", err)
			}
		}()
	}
	run("memberlist", s.members.Run)
	run("layer2", s.announcer.Run)
	run("bgp", s.bgp.Run)

	s.waitForPeers(ctx, initialJoinTimeout)
	s.reconcile()
	s.ready.Store(true)
	s.log.Info("speaker started", "bind", netip.AddrPortFrom(s.opts.BindAddr, uint16(s.opts.BindPort)).String())

	ticker := time.NewTicker(periodicReconcileEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			stopEngines()
			wg.Wait()
			return nil
		case <-s.trigger:
		case <-s.members.Changes():
		case <-ticker.C:
		}
		s.reconcile()
	}
}

// waitForPeers gives memberlist a moment to join the other speakers before the first decision.
// Deciding alone would make a restarted speaker claim (and gratuitously announce) every IP until
// it has learnt who else is alive.
func (s *Speaker) waitForPeers(ctx context.Context, timeout time.Duration) {
	want := len(s.seeds()) + 1
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(s.members.Alive()) < want {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			s.log.Warn("not every speaker joined in time; deciding with those that did", "alive", s.members.Alive(), "expected", want)
			return
		case <-s.members.Changes():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// shutdown is the planned handover: stop answering and advertising at once, then tell the
// others we are gone so the next owner announces.
func (s *Speaker) shutdown() {
	s.log.Info("withdrawing all announcements before leaving")
	s.announcer.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	if err := s.bgp.Shutdown(ctx); err != nil {
		s.log.Warn("bgp shutdown", "error", err)
	}
	cancel()
	if err := s.members.Leave(2 * time.Second); err != nil {
		s.log.Warn("memberlist leave", "error", err)
	}
	s.mu.Lock()
	for a := range s.announced {
		s.metrics.withdraw(a, s.opts.NodeName)
	}
	s.announced = map[announcement]bool{}
	s.mu.Unlock()
}

// seeds returns the memberlist addresses of the other speaker pods.
func (s *Speaker) seeds() []netip.AddrPort {
	pods, err := s.pods.Pods(s.opts.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	port := s.opts.BindPort
	if port <= 0 {
		port = membership.DefaultPort
	}
	var out []netip.AddrPort
	for _, p := range pods {
		if p.Spec.NodeName == s.opts.NodeName || p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		if ip, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			out = append(out, netip.AddrPortFrom(ip, uint16(port)))
		}
	}
	return out
}

// loadConfig returns the configuration in force. A ConfigMap that changed is parsed (without the
// config key it is an empty configuration, as in MetalLB); a broken one keeps the last good
// configuration, and so does one under which an address in a Service's status would leave every
// pool or become a .0/.255 address of an avoid-buggy-ips pool. Such a refused configuration is
// checked again at every decision, so that moving or deleting those Services lets it in. A
// missing ConfigMap keeps the last good configuration too.
func (s *Speaker) loadConfig(svcs []*corev1.Service) *config.Config {
	cm, err := s.configMaps.ConfigMaps(s.opts.Namespace).Get(s.opts.ConfigName)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		return s.cfg
	}
	if cm.ResourceVersion != s.cfgRV {
		s.cfgRV = cm.ResourceVersion
		s.pending, s.pendingWhy = nil, ""
		data, ok := cm.Data[s.opts.ConfigKey]
		if !ok {
			s.log.Info("the ConfigMap has no key "+s.opts.ConfigKey+": an empty configuration", "configmap", s.opts.Namespace+"/"+s.opts.ConfigName)
		}
		cfg, err := config.Parse([]byte(data))
		if err != nil {
			s.metrics.config.Rejected()
			s.log.Error("rejected configuration; the last good one stays in force", "error", err)
			s.recorder.Eventf(cm, corev1.EventTypeWarning, ReasonConfigInvalid,
				"speaker on %q: configuration rejected, the last good one stays in force: %v", s.opts.NodeName, err)
			return s.cfg
		}
		s.pending = cfg
	}
	if s.pending == nil {
		return s.cfg
	}
	if lost := takenAway(s.pending, svcs, s.opts.LBClass); len(lost) > 0 {
		why := describeLost(lost)
		if s.cfg == nil {
			// Refusing the first configuration would leave this speaker with none at all, which
			// announces nothing: take it, and say which addresses it cannot announce.
			s.log.Warn("configuration loaded although some Services' addresses are not in it; they are not announced", "reason", why)
		} else {
			if why != s.pendingWhy {
				s.pendingWhy = why
				s.metrics.config.Rejected()
				s.log.Error("refused configuration: it would take addresses away; the last good one stays in force. Move or delete those Services first",
					"reason", why)
				s.recorder.Eventf(cm, corev1.EventTypeWarning, ReasonConfigInvalid,
					"speaker on %q: configuration refused, the last good one stays in force: %s. Move those Services to addresses of the new pools, or delete them, first",
					s.opts.NodeName, why)
			}
			return s.cfg
		}
	}
	cfg := s.pending
	s.pending, s.pendingWhy = nil, ""
	s.metrics.config.Accepted()
	s.cfg = cfg
	s.log.Info("configuration loaded", "pools", len(cfg.Pools), "peers", len(cfg.Peers))
	return cfg
}

// hostUp probes the memberlist port of a node whose speaker failed.
func (s *Speaker) hostUp(node string) bool {
	addr, ok := s.nodeAddr(node)
	if !ok {
		return false
	}
	port := s.opts.BindPort
	if port <= 0 {
		port = membership.DefaultPort
	}
	return membership.HostAnswers(netip.AddrPortFrom(addr, uint16(port)), hostProbeTimeout)
}

// nodeAddr returns the speaker pod address of a node (hostNetwork: the node IP).
func (s *Speaker) nodeAddr(node string) (netip.Addr, bool) {
	pods, err := s.pods.Pods(s.opts.Namespace).List(labels.Everything())
	if err != nil {
		return netip.Addr{}, false
	}
	for _, p := range pods {
		if p.Spec.NodeName == node {
			if ip, err := netip.ParseAddr(p.Status.PodIP); err == nil {
				return ip, true
			}
			if ip, err := netip.ParseAddr(p.Status.HostIP); err == nil {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

// reconcile computes this node's announcements and applies the difference.
func (s *Speaker) reconcile() {
	nodes, _ := s.nodes.List(labels.Everything())
	svcs, _ := s.services.List(labels.Everything())
	cfg := s.loadConfig(svcs)
	if err := s.members.SetStandby(cfg == nil, standbyGossipTimeout); err != nil {
		s.log.Warn("telling the other speakers about this one's candidacy", "error", err)
	}
	w := snapshot(s.opts.NodeName, Inputs{
		Config:         cfg,
		LBClass:        s.opts.LBClass,
		Nodes:          nodes,
		Services:       svcs,
		EndpointSlices: s.endpointSlices,
		// Speakers on standby (no configuration) are alive but not candidates.
		Alive: s.liveness.Update(time.Now(), s.members.Candidates()),

		IgnoreExcludeLB: s.opts.IgnoreExcludeLB,
	})
	d := decide(w)
	// Before the takeover below: its announcements may meet the other side of a split at once.
	missing := len(s.members.Alive()) < len(s.seeds())+1
	wasMissing := s.partitioned.Swap(missing)
	s.announcer.SetOwned(d.Owned)
	if s.rejoined(w.Alive) {
		// A member is back (a partition healed): clients may have followed another node while
		// it was gone; announce what this node owns again so they return at once.
		s.announcer.Reannounce()
	}
	if missing && !wasMissing {
		// A speaker is missing from memberlist: if it is cut off from memberlist only, it may
		// announce this node's IPs too. Announcing them once lets it find the conflict.
		s.announcer.Assert()
	}
	peersErr := s.bgp.SetPeers(bgpPeers(d.Peers))
	if peersErr != nil {
		s.log.Error("applying BGP peers", "error", peersErr)
	}
	adsErr := s.bgp.SetAdvertisements(d.Ads)
	if adsErr != nil {
		s.log.Error("applying BGP advertisements", "error", adsErr)
	}
	s.recordAnnouncements(d, svcs)
	s.metrics.config.Synced(errors.Join(peersErr, adsErr))
}

// rejoined reports whether alive holds a member that was missing at the previous decision.
func (s *Speaker) rejoined(alive map[string]bool) bool {
	back := false
	for n := range alive {
		if s.prevAlive != nil && !s.prevAlive[n] {
			back = true
		}
	}
	s.prevAlive = alive
	return back
}

// recordAnnouncements updates metrics and emits nodeAssigned for announcements that are new.
func (s *Speaker) recordAnnouncements(d decision, svcs []*corev1.Service) {
	byKey := map[string]*corev1.Service{}
	for _, svc := range svcs {
		byKey[svc.Namespace+"/"+svc.Name] = svc
	}
	now := map[announcement]bool{}
	byIP := map[netip.Addr][]string{}
	for _, a := range d.Announcements {
		now[a] = true
		if !slices.Contains(byIP[a.IP], a.Service) {
			byIP[a.IP] = append(byIP[a.IP], a.Service)
		}
	}
	s.mu.Lock()
	s.byIP = byIP
	var started []announcement
	for a := range now {
		if !s.announced[a] {
			started = append(started, a)
			s.metrics.announce(a, s.opts.NodeName)
		}
	}
	for a := range s.announced {
		if !now[a] {
			s.metrics.withdraw(a, s.opts.NodeName)
			s.log.Info("stopped announcing", "service", a.Service, "ip", a.IP, "protocol", a.Protocol)
		}
	}
	s.announced = now
	s.mu.Unlock()
	for _, a := range started {
		s.log.Info("announcing", "service", a.Service, "ip", a.IP, "protocol", a.Protocol)
		if svc := byKey[a.Service]; svc != nil {
			s.recorder.Eventf(svc, corev1.EventTypeNormal, ReasonNodeAssigned, "announcing from node %q with protocol %q", s.opts.NodeName, a.Protocol)
		}
	}
	// Say once, not at every decision, when a Service has no announcer at all and why.
	for key, why := range d.NotAnnounced {
		if s.unannounced[key] != why {
			s.log.Warn("no node announces this service", "service", key, "reason", why)
		}
	}
	for key := range s.unannounced {
		if _, still := d.NotAnnounced[key]; !still {
			s.log.Info("service has an announcer again", "service", key)
		}
	}
	s.unannounced = d.NotAnnounced
	s.metrics.unannounced.Set(float64(len(d.NotAnnounced)))
}

// endpointSlices returns the EndpointSlices of svc from the informer cache.
func (s *Speaker) endpointSlices(svc *corev1.Service) []*discoveryv1.EndpointSlice {
	sel := labels.SelectorFromSet(labels.Set{serviceNameLabel: svc.Name})
	slices, _ := s.slices.EndpointSlices(svc.Namespace).List(sel)
	return slices
}

// servicesOf returns the Services announced with ip at the last decision. O(1) per Service.
func (s *Speaker) servicesOf(ip netip.Addr) []*corev1.Service {
	s.mu.Lock()
	keys := s.byIP[ip]
	s.mu.Unlock()
	var out []*corev1.Service
	for _, key := range keys {
		ns, name, _ := strings.Cut(key, "/")
		if svc, err := s.services.Services(ns).Get(name); err == nil {
			out = append(out, svc)
		}
	}
	return out
}

// onDuplicate is called by layer2 at most every 10s per IP, whatever the number of MACs.
func (s *Speaker) onDuplicate(ip netip.Addr, mac net.HardwareAddr, iface string) {
	for _, svc := range s.servicesOf(ip) {
		s.recorder.Eventf(svc, corev1.EventTypeWarning, ReasonDuplicateOwner,
			"node %q announces %s but %s also answers for it on %s (split brain: are the speakers' memberlist port 7946 and Secret the same everywhere?)",
			s.opts.NodeName, ip, mac, iface)
	}
}

// onYield is called by layer2 when another announcer of ip wins the tie-break.
func (s *Speaker) onYield(ip netip.Addr, winner net.HardwareAddr, iface string) {
	s.log.Warn("another node announces an IP this node owns and wins the tie-break; not answering for it while that lasts (split brain)",
		"ip", ip, "winner_mac", winner.String(), "interface", iface)
	for _, svc := range s.servicesOf(ip) {
		s.recorder.Eventf(svc, corev1.EventTypeWarning, ReasonYielded,
			"node %q stops announcing %s while %s (on %s) also does and wins the tie-break; it takes it back when that one stops or the speakers see each other again",
			s.opts.NodeName, ip, winner, iface)
	}
}

func bgpPeers(peers []*config.Peer) []bgp.Peer {
	out := make([]bgp.Peer, 0, len(peers))
	for _, p := range peers {
		out = append(out, bgp.Peer{
			Addr:          p.Addr,
			Port:          p.Port,
			ASN:           p.ASN,
			MyASN:         p.MyASN,
			SrcAddr:       p.SrcAddr,
			RouterID:      p.RouterID,
			HoldTime:      p.HoldTime,
			KeepaliveTime: p.KeepaliveTime,
			Password:      p.Password,
			EBGPMultiHop:  p.EBGPMultiHop,
		})
	}
	return out
}

func nodeCondition(n *corev1.Node, t corev1.NodeConditionType) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
