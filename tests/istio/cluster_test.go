package istio

// What a cluster running Istio's demo profile would hold besides our render: the injector's
// template, values and mesh config, the ingress gateway (Deployment, ServiceAccount, Service),
// and, for every Deployment replica, the Pod the injector would make and the EndpointSlice entry
// that points at it. Offline analysis and pilot's fake discovery server see these as a cluster.

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	meshconfig "istio.io/api/mesh/v1alpha1"
	meshcfg "istio.io/istio/pkg/config/mesh"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

const istioSystem = "istio-system"

// demo is the pinned release's demo profile, from `istioctl manifest generate --set profile=demo`.
type demo struct {
	injectConfig, values, meshFile string // files for kube-inject and analyze
	mesh                           *meshconfig.MeshConfig
	gateway                        *appsv1.Deployment
	gatewayService                 *corev1.Service
	gatewayAccount                 *corev1.ServiceAccount
}

var (
	demoOnce sync.Once
	demoVal  *demo
	demoErr  error
	demoDir  string // the extracted files, removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if demoDir != "" {
		os.RemoveAll(demoDir)
	}
	os.Exit(code)
}

func demoProfile(t testing.TB) *demo {
	t.Helper()
	demoOnce.Do(func() { demoVal, demoErr = loadDemo(istioDir(t)) })
	if demoErr != nil {
		t.Fatalf("the demo profile (run `make setup`): %v", demoErr)
	}
	return demoVal
}

func loadDemo(dir string) (*demo, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "demo-profile.yaml"))
	if err != nil {
		return nil, err
	}
	all, err := parseAll(raw)
	if err != nil {
		return nil, err
	}
	m := &mesh{objects: all}
	d := &demo{}
	data := func(kind, ns, name, key string) (string, error) {
		for _, o := range m.objects {
			if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
				v, ok, _ := unstructured.NestedString(o.Object, "data", key)
				if ok {
					return v, nil
				}
			}
		}
		return "", fmt.Errorf("no %s %s/%s with data.%s in the demo profile", kind, ns, name, key)
	}
	out, err := os.MkdirTemp("", "meshtally-istio-demo-")
	if err != nil {
		return nil, err
	}
	demoDir = out
	for _, f := range []struct {
		name, configMap, key string
		dst                  *string
	}{
		{"inject-config.yaml", "istio-sidecar-injector", "config", &d.injectConfig},
		{"inject-values.json", "istio-sidecar-injector", "values", &d.values},
		{"mesh.yaml", "istio", "mesh", &d.meshFile},
	} {
		v, err := data("ConfigMap", istioSystem, f.configMap, f.key)
		if err != nil {
			return nil, err
		}
		*f.dst = filepath.Join(out, f.name)
		if err := os.WriteFile(*f.dst, []byte(v), 0o644); err != nil {
			return nil, err
		}
		if f.key == "mesh" {
			if d.mesh, err = meshcfg.ApplyMeshConfigDefaults(v); err != nil {
				return nil, err
			}
		}
	}
	for _, o := range m.objects {
		if o.GetNamespace() != istioSystem {
			continue
		}
		var into any
		switch {
		case o.GetKind() == "Deployment" && o.GetName() == "istio-ingressgateway":
			d.gateway = &appsv1.Deployment{}
			into = d.gateway
		case o.GetKind() == "Service" && o.GetName() == "istio-ingressgateway":
			d.gatewayService = &corev1.Service{}
			into = d.gatewayService
		case o.GetKind() == "ServiceAccount" && o.GetName() == "istio-ingressgateway-service-account":
			d.gatewayAccount = &corev1.ServiceAccount{}
			into = d.gatewayAccount
		default:
			continue
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
			return nil, err
		}
	}
	if d.gateway == nil || d.gatewayService == nil || d.gatewayAccount == nil {
		return nil, fmt.Errorf("the demo profile has no istio-ingressgateway Deployment, Service and ServiceAccount")
	}
	return d, nil
}

// parseAll reads any multi-document stream (the install manifest has kinds we do not render).
func parseAll(stream []byte) ([]*unstructured.Unstructured, error) {
	m := &mesh{}
	err := decodeEach(stream, func(u *unstructured.Unstructured) { m.objects = append(m.objects, u) })
	return m.objects, err
}

// kubeInject runs the real sidecar injector (`istioctl kube-inject`, offline, with the demo
// profile's template, values and mesh config) on Deployments, returning the injected ones.
func kubeInject(t testing.TB, deployments ...*appsv1.Deployment) []*appsv1.Deployment {
	t.Helper()
	d := demoProfile(t)
	var docs []any
	for _, dep := range deployments {
		c := dep.DeepCopy()
		c.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
		docs = append(docs, c)
	}
	in := writeTemp(t, "deployments.yaml", toYAML(docs...))
	// An explicit revision: without one istioctl asks a cluster for the default revision.
	out := run(t, istioctl(t), "kube-inject", "--revision", "default", "-f", in,
		"--injectConfigFile", d.injectConfig, "--valuesFile", d.values, "--meshConfigFile", d.meshFile)
	objs, err := parseAll(out)
	if err != nil {
		t.Fatal(err)
	}
	var injected []*appsv1.Deployment
	for _, o := range objs {
		dep := &appsv1.Deployment{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, dep); err != nil {
			t.Fatal(err)
		}
		injected = append(injected, dep)
	}
	if len(injected) != len(deployments) {
		t.Fatalf("kube-inject returned %d Deployments for %d", len(injected), len(deployments))
	}
	return injected
}

// workload is one running replica: its Pod and the address EndpointSlices give it.
type workload struct {
	pod     *corev1.Pod
	service string
}

// clusterState is the render plus what a cluster adds to it, as Kubernetes objects.
type clusterState struct {
	mesh      *mesh
	injected  []*appsv1.Deployment
	workloads []workload // the mesh's pods, then the gateway's
	gateway   *corev1.Pod
	platform  []any // what the demo profile installs: istio-system Namespace, the injected gateway
	extra     []any // platform, then the pods and EndpointSlices a cluster's controllers make
}

var (
	clusterMu    sync.Mutex
	clusterCache = map[*mesh]*clusterState{}
)

// clusterFor builds (once per render) the cluster a render would become.
func clusterFor(t testing.TB, m *mesh) *clusterState {
	t.Helper()
	clusterMu.Lock()
	defer clusterMu.Unlock()
	if c, ok := clusterCache[m]; ok {
		return c
	}
	d := demoProfile(t)
	c := &clusterState{mesh: m}
	all := append(append([]*appsv1.Deployment{}, m.deployments...), d.gateway)
	injected := kubeInject(t, all...)
	c.injected = injected[:len(m.deployments)]
	gatewayDep := injected[len(m.deployments)]

	c.platform = []any{
		&corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: istioSystem}},
		withType(d.gatewayAccount, "v1", "ServiceAccount"), withType(d.gatewayService, "v1", "Service"),
		withType(gatewayDep, "apps/v1", "Deployment")}
	c.extra = append(c.extra, c.platform...)
	var allPods []*corev1.Pod
	for i, dep := range c.injected {
		replicas := int32(1)
		if dep.Spec.Replicas != nil {
			replicas = *dep.Spec.Replicas
		}
		var pods []*corev1.Pod
		for r := int32(0); r < replicas; r++ {
			pods = append(pods, podFor(dep, r, fmt.Sprintf("10.1.%d.%d", i+1, r+1)))
		}
		for _, p := range pods {
			c.workloads = append(c.workloads, workload{pod: p, service: dep.Name})
			c.extra = append(c.extra, p)
		}
		allPods = append(allPods, pods...)
	}
	// A Service's endpoints are the pods its selector picks: every version's Deployment.
	for _, s := range m.services {
		var pods []*corev1.Pod
		for _, p := range allPods {
			if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(p.Labels)) {
				pods = append(pods, p)
			}
		}
		c.extra = append(c.extra, endpointSlice(s, pods))
	}
	c.gateway = podFor(gatewayDep, 0, "10.0.0.10")
	c.workloads = append(c.workloads, workload{pod: c.gateway, service: d.gatewayService.Name})
	c.extra = append(c.extra, c.gateway, endpointSlice(d.gatewayService, []*corev1.Pod{c.gateway}))
	clusterCache[m] = c
	return c
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

func withType(o runtime.Object, apiVersion, kind string) runtime.Object {
	o.GetObjectKind().SetGroupVersionKind(schema.FromAPIVersionAndKind(apiVersion, kind))
	return o
}

// podFor is replica r of an (injected) Deployment, running and ready at ip.
func podFor(dep *appsv1.Deployment, r int32, ip string) *corev1.Pod {
	tmpl := dep.Spec.Template
	labels := map[string]string{"pod-template-hash": "7d4b9c8f6"}
	for k, v := range tmpl.Labels {
		labels[k] = v
	}
	return &corev1.Pod{
		TypeMeta: typeMeta("v1", "Pod"),
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("%s-7d4b9c8f6-%c", dep.Name, 'a'+r),
			Namespace:   dep.Namespace,
			Labels:      labels,
			Annotations: tmpl.Annotations,
		},
		Spec: *tmpl.Spec.DeepCopy(),
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      ip,
			PodIPs:     []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

// endpointSlice is what the EndpointSlice controller writes for a Service and its ready pods.
func endpointSlice(s *corev1.Service, pods []*corev1.Pod) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		TypeMeta: typeMeta("discovery.k8s.io/v1", "EndpointSlice"),
		ObjectMeta: metav1.ObjectMeta{
			Name:      s.Name + "-x7k2p",
			Namespace: s.Namespace,
			Labels:    map[string]string{discoveryv1.LabelServiceName: s.Name},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, p := range s.Spec.Ports {
		target := p.Port
		if p.TargetPort.IntValue() != 0 {
			target = int32(p.TargetPort.IntValue())
		}
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{
			Name: ptr.To(p.Name), Port: ptr.To(target), Protocol: ptr.To(p.Protocol), AppProtocol: p.AppProtocol,
		})
	}
	for _, pod := range pods {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{pod.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name},
		})
	}
	return es
}
