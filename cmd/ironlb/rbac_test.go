package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/ironlb/ironlb/internal/apitest"
)

const rbacNS = "metallb-system"

// manifestObjects decodes the documents of a multi-document YAML manifest.
func manifestObjects(t *testing.T, yaml []byte) []runtime.Object {
	t.Helper()
	var out []runtime.Object
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(yaml), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(doc, "")) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("decoding manifest document: %v\n%s", err, doc)
		}
		out = append(out, obj)
	}
	return out
}

// metallbManifest is MetalLB v0.12.1's own manifest, as hack/metallb-manifest.sh prints it.
func metallbManifest(t *testing.T) []byte {
	t.Helper()
	out, err := exec.Command("../../hack/metallb-manifest.sh").Output()
	if err != nil {
		t.Fatalf("hack/metallb-manifest.sh: %v (it reads go.universe.tf/metallb from the module proxy or cache)", err)
	}
	return out
}

// installRBAC creates the ServiceAccounts, roles and bindings of a manifest (nothing else).
func installRBAC(t *testing.T, admin kubernetes.Interface, objs []runtime.Object) {
	t.Helper()
	ctx := t.Context()
	var err error
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ServiceAccount:
			_, err = admin.CoreV1().ServiceAccounts(rbacNS).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = admin.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = admin.RbacV1().Roles(rbacNS).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = admin.RbacV1().RoleBindings(rbacNS).Create(ctx, o, metav1.CreateOptions{})
		default:
			continue
		}
		if err != nil {
			t.Fatalf("creating %T: %v", o, err)
		}
	}
}

// asServiceAccount is a client acting as the ServiceAccount sa of metallb-system.
func asServiceAccount(t *testing.T, srv *apitest.Server, sa string) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(srv.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + rbacNS + ":" + sa}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startRBACServer starts an API server holding metallb-system and the RBAC of one manifest.
func startRBACServer(t *testing.T, manifest []byte) (*apitest.Server, kubernetes.Interface) {
	t.Helper()
	srv := apitest.Start(t)
	admin := srv.Client(t, "test-admin")
	if _, err := admin.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rbacNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	installRBAC(t, admin, manifestObjects(t, manifest))
	return srv, admin
}

func speakerPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: rbacNS, Labels: map[string]string{"app": "metallb", "component": "speaker"}},
		Spec:       corev1.PodSpec{NodeName: name, Containers: []corev1.Container{{Name: "speaker", Image: "x"}}},
	}
}

// TestMetalLBRBAC runs the RBAC checks of the speaker and the controller against a real API
// server holding MetalLB v0.12.1's RBAC and ironlb's, each component acting as its
// ServiceAccount.
func TestMetalLBRBAC(t *testing.T) {
	ironlbYAML, err := os.ReadFile(filepath.Join("..", "..", "manifests", "ironlb.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		manifest    []byte
		wantPolling bool // the speaker polls its pods
		wantLeases  bool // the controller runs leader election
	}{
		{"MetalLB v0.12.1's RBAC", metallbManifest(t), true, false},
		{"ironlb's RBAC", ironlbYAML, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, admin := startRBACServer(t, tc.manifest)
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			ctx := t.Context()

			if got := leasesAllowed(ctx, asServiceAccount(t, srv, "controller"), rbacNS, logger); got != tc.wantLeases {
				t.Errorf("leasesAllowed = %v, want %v", got, tc.wantLeases)
			}

			client := speakerClient(ctx, asServiceAccount(t, srv, "speaker"), rbacNS, logger)
			pc, polling := client.(*podPollingClient)
			if polling != tc.wantPolling {
				t.Fatalf("speaker polls its pods: %v, want %v", polling, tc.wantPolling)
			}
			if polling {
				pc.interval = 200 * time.Millisecond
			}
			// The speaker's pod informer (namespace and label selector as in speaker.New) must
			// sync and follow additions and deletions, whichever way it gets them.
			if _, err := admin.CoreV1().Pods(rbacNS).Create(ctx, speakerPod("node-a"), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			watchErrs := make(chan error, 100)
			f := informers.NewSharedInformerFactoryWithOptions(client, time.Minute, informers.WithNamespace(rbacNS),
				informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = "app=metallb,component=speaker" }))
			inf := f.Core().V1().Pods()
			if err := inf.Informer().SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
				watchErrs <- err
			}); err != nil {
				t.Fatal(err)
			}
			f.Start(ctx.Done())
			t.Cleanup(f.Shutdown)
			if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
				t.Fatal("pod informer did not sync")
			}
			names := func() string {
				pods, _ := inf.Lister().List(labels.Everything())
				var n []string
				for _, p := range pods {
					n = append(n, p.Name)
				}
				slices.Sort(n)
				return fmt.Sprint(n)
			}
			waitFor := func(want string) {
				t.Helper()
				err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
					return names() == want, nil
				})
				if err != nil {
					t.Fatalf("speaker pods seen %s, want %s", names(), want)
				}
			}
			waitFor("[node-a]")
			if _, err := admin.CoreV1().Pods(rbacNS).Create(ctx, speakerPod("node-b"), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitFor("[node-a node-b]")
			if err := admin.CoreV1().Pods(rbacNS).Delete(ctx, "node-a", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
				t.Fatal(err)
			}
			waitFor("[node-b]")
			select {
			case err := <-watchErrs:
				t.Errorf("the pod informer's watch failed: %v", err)
			default:
			}

			// MetalLB's controller creates the memberlist Secret, owned by its Deployment, when
			// there is none; its RBAC allows exactly that, and so does ironlb's compat mode.
			if !polling {
				return
			}
			d, err := admin.AppsV1().Deployments(rbacNS).Create(ctx, &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "controller", Namespace: rbacNS},
				Spec: appsv1.DeploymentSpec{
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
						Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ctrl := asServiceAccount(t, srv, "controller")
			if err := ensureMemberlistSecret(ctx, ctrl, rbacNS, "memberlist", "controller", logger); err != nil {
				t.Fatalf("ensureMemberlistSecret: %v", err)
			}
			s, err := admin.CoreV1().Secrets(rbacNS).Get(ctx, "memberlist", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			key := s.Data["secretkey"]
			if len(key) < 32 || len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != d.UID {
				t.Fatalf("memberlist Secret: key of %d bytes, owners %+v; want >= 32 bytes, owned by Deployment %s", len(key), s.OwnerReferences, d.UID)
			}
			if err := ensureMemberlistSecret(ctx, ctrl, rbacNS, "memberlist", "controller", logger); err != nil {
				t.Fatalf("ensureMemberlistSecret, second time: %v", err)
			}
			s, err = admin.CoreV1().Secrets(rbacNS).Get(ctx, "memberlist", metav1.GetOptions{})
			if err != nil || string(s.Data["secretkey"]) != string(key) {
				t.Fatalf("an existing memberlist Secret was changed (err %v)", err)
			}
		})
	}
}
