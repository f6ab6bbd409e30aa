package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/internal/svcinfo"
	"github.com/ironlb/ironlb/speaker"
)

// ignoreExcludeLBHelp is the help of --ignore-exclude-lb, which the speaker and `ironlb status`
// share so that status explains what the speakers do.
const ignoreExcludeLBHelp = "announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers too, in layer 2 and BGP " +
	"(MetalLB's flag; by default the label keeps a node from announcing; give status the same value as the speakers)"

// statusRow is one line of `ironlb status`: an announced IP, or a Service still waiting for one.
type statusRow struct {
	speaker.Announcement
	Pending bool `json:"pending,omitempty"`
}

// runStatus implements "ironlb status": per Service, its IP, pool, protocol and the node(s)
// announcing it and why — computed with the speakers' own rules — or why it is pending.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ironlb status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file; empty uses the in-cluster service account")
	namespace := fs.String("namespace", "metallb-system", "namespace of the ConfigMap and the speaker pods")
	configName := fs.String("config-name", "config", "name of the ConfigMap")
	lbClass := fs.String("lb-class", "", "show Services of this spec.loadBalancerClass")
	mlLabels := fs.String("ml-labels", "app=metallb,component=speaker", "label selector of the speaker pods")
	ignoreExcludeLB := fs.Bool("ignore-exclude-lb", false, ignoreExcludeLBHelp)
	output := fs.String("o", "text", "output: text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "ironlb status: -o %q: want text or json\n", *output)
		return 2
	}
	client, err := kubeClient(*kubeconfig, "ironlb-status")
	if err != nil {
		fmt.Fprintln(stderr, "ironlb status:", err)
		return 1
	}
	rows, warnings, err := statusReport(ctx, client, statusOptions{
		namespace: *namespace, configName: *configName, lbClass: *lbClass, mlLabels: *mlLabels, ignoreExcludeLB: *ignoreExcludeLB,
	})
	if err != nil {
		fmt.Fprintln(stderr, "ironlb status:", err)
		return 1
	}
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return 1
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tIP\tPOOL\tPROTOCOL\tANNOUNCED BY\tWHY")
	for _, r := range rows {
		nodes := strings.Join(r.Nodes, ",")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Service, r.IP, dash(r.Pool), dash(r.Protocol), dash(nodes), r.Why)
	}
	if err := tw.Flush(); err != nil {
		return 1
	}
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// statusOptions select what `ironlb status` reads and how the speakers it explains are run.
type statusOptions struct {
	namespace, configName, lbClass, mlLabels string
	ignoreExcludeLB                          bool // the speakers' --ignore-exclude-lb
}

// statusReport gathers the objects and explains every LoadBalancer Service of the class.
// Speakers count as alive when their pod is Ready (the CLI cannot see memberlist itself).
func statusReport(ctx context.Context, client kubernetes.Interface, opts statusOptions) ([]statusRow, []string, error) {
	namespace, configName, lbClass, mlLabels := opts.namespace, opts.configName, opts.lbClass, opts.mlLabels
	var warnings []string
	var cfg *config.Config
	cm, err := client.CoreV1().ConfigMaps(namespace).Get(ctx, configName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		warnings = append(warnings, fmt.Sprintf("ConfigMap %s/%s not found: no address pools", namespace, configName))
	case err != nil:
		return nil, nil, fmt.Errorf("reading ConfigMap %s/%s: %w", namespace, configName, err)
	default:
		if cfg, err = config.Parse([]byte(cm.Data["config"])); err != nil {
			warnings = append(warnings, fmt.Sprintf("ConfigMap %s/%s is invalid (the components keep their last good configuration): %v", namespace, configName, err))
			cfg = nil
		}
	}

	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing nodes: %w", err)
	}
	svcs, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing services: %w", err)
	}
	slices, err := client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing endpointslices: %w", err)
	}
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: mlLabels})
	if err != nil {
		return nil, nil, fmt.Errorf("listing speaker pods: %w", err)
	}

	alive := map[string]bool{}
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.Spec.NodeName != "" {
				alive[p.Spec.NodeName] = true
			}
		}
	}
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for i := range slices.Items {
		sl := &slices.Items[i]
		key := sl.Namespace + "/" + sl.Labels[discoveryv1.LabelServiceName]
		bySvc[key] = append(bySvc[key], sl)
	}
	in := speaker.Inputs{
		Config:          cfg,
		LBClass:         lbClass,
		EndpointSlices:  func(s *corev1.Service) []*discoveryv1.EndpointSlice { return bySvc[s.Namespace+"/"+s.Name] },
		Alive:           alive,
		IgnoreExcludeLB: opts.ignoreExcludeLB,
	}
	for i := range nodes.Items {
		in.Nodes = append(in.Nodes, &nodes.Items[i])
	}
	var pending []*corev1.Service
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		in.Services = append(in.Services, svc)
		if svcinfo.Handled(svc, lbClass) && len(svcinfo.StatusIPs(svc)) == 0 {
			pending = append(pending, svc)
		}
	}

	var rows []statusRow
	for _, a := range speaker.Explain(in) {
		rows = append(rows, statusRow{Announcement: a})
	}
	for _, svc := range pending {
		rows = append(rows, statusRow{
			Announcement: speaker.Announcement{Service: svc.Namespace + "/" + svc.Name, IP: "<pending>", Nodes: []string{}, Why: pendingReason(ctx, client, svc)},
			Pending:      true,
		})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Service < rows[j].Service })
	return rows, warnings, nil
}

// pendingReason returns the newest AllocationFailed event of the Service, if any.
func pendingReason(ctx context.Context, client kubernetes.Interface, svc *corev1.Service) string {
	evs, err := client.CoreV1().Events(svc.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + svc.Name + ",reason=AllocationFailed",
	})
	if err != nil || len(evs.Items) == 0 {
		return "no address assigned yet (no AllocationFailed event: is the controller running?)"
	}
	newest := evs.Items[0]
	for _, ev := range evs.Items[1:] {
		if ev.LastTimestamp.After(newest.LastTimestamp.Time) {
			newest = ev
		}
	}
	return newest.Message
}
