package istio

// Calls that leave the mesh, judged by Istio's own code: the render of testdata/egress-mesh.yaml
// (a TLS-origination entry whose callers are listed, a plain-HTTP one, REGISTRY_ONLY) passes
// `istioctl validate` and the CRDs with their CEL rules; `istioctl manifest generate` reads its
// install file into a mesh config with REGISTRY_ONLY (beside the tracing provider, in the one
// install-time file); `istioctl analyze` with that mesh config says nothing (no IST0134,
// IST0129, IST0101, IST0174), under either dialect; and istiod's translation gives an admitted
// caller the outbound cluster with TLS origination (SNI, CA, the port the server listens on),
// the route with the entry's timeout and retries, and every caller the block_all virtual host
// for an undeclared host, while a caller left out has neither the cluster nor the route. `up`
// for the same file is held equal to it.
//
// Allowed differences, by design: istiod's cluster resolves the host by DNS (STRICT_DNS, the
// server's port 443) where the local one is a loopback address (`up`'s outside server); and
// the CA file is the system bundle on a cluster, the outside CA locally.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	istiocluster "istio.io/istio/pkg/cluster"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const (
	paymentsHost = "api.payments.example"
	weatherHost  = "weather.example.org"
)

func egressMeshFile(t testing.TB) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "tests/istio/testdata/egress-mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// egressRender is `render --output` of the egress mesh file (in `api`), read back.
type egressRender struct {
	m       *mesh
	install string
}

func renderEgress(t *testing.T, api string) egressRender {
	t.Helper()
	return renderEgressFile(t, egressMeshFile(t)+"api: "+api+"\n")
}

// allowAnyMeshFile is the egress mesh file under Istio's default policy (and so with no callers
// list, which only REGISTRY_ONLY can enforce).
func allowAnyMeshFile(t testing.TB) string {
	var lines []string
	for _, l := range strings.Split(egressMeshFile(t), "\n") {
		switch {
		case strings.HasPrefix(l, "outbound_policy:"):
			lines = append(lines, "outbound_policy: allow_any")
		case strings.Contains(l, "callers:"):
		default:
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func renderEgressFile(t *testing.T, text string) egressRender {
	t.Helper()
	dir := t.TempDir()
	module := filepath.Join(dir, "meshtally_filter.wasm")
	if err := os.WriteFile(module, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := writeTemp(t, "egress.yaml", []byte(text))
	out := filepath.Join(dir, "render")
	run(t, deployerBin(t), "render", "--file", file, "--wasm-file", module, "--output", out)
	m, err := parseMesh(run(t, deployerBin(t), "render", "--file", file, "--wasm-file", module))
	if err != nil {
		t.Fatal(err)
	}
	return egressRender{m: m, install: filepath.Join(out, "monitoring/istio-install.yaml")}
}

// passThroughEntries are entries whose TLS the sidecar does not open (render only: `up`'s
// sidecars are the apps' HTTP proxies): a ServiceEntry each, no route, no origination.
const passThroughEntries = `  - {name: ledger, host: db.ledger.example, port: 5432, protocol: tls}
  - {name: files, host: files.example.com, port: 443, protocol: https}
`

func TestEgressRenderIsValidForIstio(t *testing.T) {
	for _, api := range []string{"istio", "gateway-api"} {
		t.Run(api, func(t *testing.T) {
			r := renderEgressFile(t, egressMeshFile(t)+passThroughEntries+"api: "+api+"\n")
			kinds := map[string]int{}
			var egress []*unstructured.Unstructured
			for _, o := range r.m.objects {
				switch o.GetKind() {
				case "ServiceEntry", "Sidecar":
					egress = append(egress, o)
				case "DestinationRule", "VirtualService":
					if h, _, _ := unstructured.NestedString(o.Object, "spec", "host"); h == paymentsHost {
						egress = append(egress, o)
					}
					if hs, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "hosts"); slices.Contains(hs, paymentsHost) || slices.Contains(hs, weatherHost) {
						egress = append(egress, o)
					}
				default:
					continue
				}
				kinds[o.GetKind()]++
			}
			// Four ServiceEntries, one DestinationRule (origination), two VirtualServices (the
			// entries the sidecar speaks HTTP to), a Sidecar per service (payments names its
			// callers).
			want := map[string]int{"ServiceEntry": 4, "DestinationRule": 1, "VirtualService": 2, "Sidecar": 3}
			got := map[string]int{}
			for _, o := range egress {
				got[o.GetKind()]++
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("egress objects %v, want %v", got, want)
			}
			out, errOut, err := validate(t, unstructuredYAML(egress))
			if err != nil {
				t.Errorf("istioctl validate: %v\n%s%s", err, out, errOut)
			}
			if out, errOut, err := runErr(istioctl(t), "validate", "-f", r.install); err != nil || !strings.Contains(string(out)+string(errOut), "is valid") {
				t.Errorf("istioctl validate the install file: %v\n%s%s", err, out, errOut)
			}
			for _, err := range validateCRDs(t, asAPIServerReads(egress)) {
				t.Error(err)
			}
			mc, meshFile := installedMesh(t, r.install)
			if mc.GetOutboundTrafficPolicy().GetMode() != meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
				t.Errorf("the install's mesh config: outboundTrafficPolicy %v", mc.GetOutboundTrafficPolicy())
			}
			if len(mc.GetExtensionProviders()) == 0 {
				t.Error("the install file lost the tracing provider")
			}
			c := clusterFor(t, r.m)
			files := []string{
				writeTemp(t, "render.yaml", unstructuredYAML(r.m.objects)),
				writeTemp(t, "cluster.yaml", toYAML(c.extra...)),
			}
			args := append([]string{"analyze", "--use-kube=false", "--all-namespaces", "--output", "json", "--meshConfigFile", meshFile}, files...)
			out, errOut, err = runErr(istioctl(t), args...)
			var msgs []analyzerMessage
			if jerr := json.Unmarshal(out, &msgs); jerr != nil {
				t.Fatalf("istioctl analyze: %v / %v\n%s%s", err, jerr, out, errOut)
			}
			for _, msg := range msgs {
				t.Errorf("%s %s: %s (%s)", msg.Level, msg.Code, msg.Message, msg.Origin)
			}
		})
	}
}

// TestEgressWithoutCACertificatesIsIST0129 shows the analyzer the render is held to does see
// the canonical mistake: the same DestinationRule without caCertificates.
func TestEgressWithoutCACertificatesIsIST0129(t *testing.T) {
	r := renderEgress(t, "istio")
	var objs []*unstructured.Unstructured
	for _, o := range r.m.objects {
		o = o.DeepCopy()
		if h, _, _ := unstructured.NestedString(o.Object, "spec", "host"); o.GetKind() == "DestinationRule" && h == paymentsHost {
			settings, _, _ := unstructured.NestedSlice(o.Object, "spec", "trafficPolicy", "portLevelSettings")
			for _, s := range settings {
				delete(s.(map[string]any)["tls"].(map[string]any), "caCertificates")
			}
			if err := unstructured.SetNestedSlice(o.Object, settings, "spec", "trafficPolicy", "portLevelSettings"); err != nil {
				t.Fatal(err)
			}
		}
		objs = append(objs, o)
	}
	_, meshFile := installedMesh(t, r.install)
	c := clusterFor(t, r.m)
	out, _, _ := runErr(istioctl(t), "analyze", "--use-kube=false", "--all-namespaces", "--output", "json", "--meshConfigFile", meshFile,
		writeTemp(t, "render.yaml", unstructuredYAML(objs)), writeTemp(t, "cluster.yaml", toYAML(c.extra...)))
	var msgs []analyzerMessage
	if err := json.Unmarshal(out, &msgs); err != nil {
		t.Fatalf("istioctl analyze: %v\n%s", err, out)
	}
	found := false
	for _, msg := range msgs {
		found = found || msg.Code == "IST0129"
	}
	if !found {
		t.Errorf("analyze did not flag the DestinationRule without caCertificates: %v", msgs)
	}
}

// egressView is what one sidecar does with calls that leave the mesh, as far as meshtally
// decides it.
type egressView struct {
	// Per declared host the sidecar may call: its route and its cluster's TLS.
	Hosts map[string]egressHost
	// The catch-all virtual host of each port's route table: `block_all 502`, `allow_any`.
	CatchAll string
}

type egressHost struct {
	Cluster   string
	Timeout   string
	Retry     string
	SNI       string
	SAN       string
	RouteName string
	HasTLS    bool
}

func tlsOf(t testing.TB, ts any) (sni, san string, ok bool) {
	t.Helper()
	u := &tlsv3.UpstreamTlsContext{}
	switch v := ts.(type) {
	case *clusterv3.Cluster:
		if v.GetTransportSocket() == nil {
			return "", "", false
		}
		if err := v.GetTransportSocket().GetTypedConfig().UnmarshalTo(u); err != nil {
			t.Fatalf("%s: %v", v.GetName(), err)
		}
	}
	ctx := u.GetCommonTlsContext()
	// The name the server's certificate must carry, typed (`up`) or not (istiod): either is
	// checked against the certificate's SANs.
	for _, vc := range []*tlsv3.CertificateValidationContext{ctx.GetCombinedValidationContext().GetDefaultValidationContext(), ctx.GetValidationContext()} {
		for _, m := range vc.GetMatchTypedSubjectAltNames() {
			san = m.GetMatcher().GetExact()
		}
		for _, m := range vc.GetMatchSubjectAltNames() { //nolint:staticcheck // istiod still writes these
			san = m.GetExact()
		}
	}
	return u.GetSni(), san, true
}

func istiodEgress(t *testing.T, r egressRender, mc *meshconfig.MeshConfig) map[string]egressView {
	t.Helper()
	c := clusterFor(t, r.m)
	var kube []string
	for _, o := range r.m.kubeObjects() {
		kube = append(kube, string(toYAML(o.Object)))
	}
	for _, o := range c.extra {
		kube = append(kube, string(toYAML(o)))
	}
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:           strings.TrimPrefix(string(unstructuredYAML(r.m.istioObjects())), "---\n"),
		KubernetesObjectString: strings.ReplaceAll(strings.Join(kube, "\n"), "\n---\n---\n", "\n---\n"),
		MeshConfig:             mc,
	})
	out := map[string]egressView{}
	for _, w := range c.workloads {
		if _, done := out[w.service]; done || w.pod == c.gateway {
			continue
		}
		pod := w.pod
		p := s.SetupProxy(&model.Proxy{
			Type: model.SidecarProxy, ID: pod.Name + "." + pod.Namespace, IPAddresses: []string{pod.Status.PodIP},
			ConfigNamespace: pod.Namespace, DNSDomain: pod.Namespace + ".svc.cluster.local", Labels: pod.Labels,
			Metadata: &model.NodeMetadata{Namespace: pod.Namespace, Labels: pod.Labels, WorkloadName: w.service,
				IstioVersion: pins(t)["ISTIO_VERSION"], ServiceAccount: pod.Spec.ServiceAccountName,
				ClusterID: istiocluster.ID("Kubernetes")},
		})
		clusters := map[string]*clusterv3.Cluster{}
		for _, cl := range s.Clusters(p) {
			clusters[cl.GetName()] = cl
		}
		view := egressView{Hosts: map[string]egressHost{}}
		for _, rc := range s.Routes(p) {
			if rc.GetName() != "80" && rc.GetName() != "8080" {
				continue
			}
			for _, vh := range rc.GetVirtualHosts() {
				if slices.Contains(vh.GetDomains(), "*") {
					view.CatchAll = catchAllString(vh)
					continue
				}
				for _, host := range []string{paymentsHost, weatherHost} {
					if !slices.Contains(vh.GetDomains(), host) {
						continue
					}
					rt := vh.GetRoutes()[0]
					h := egressHost{
						Cluster:   rt.GetRoute().GetCluster(),
						Timeout:   rt.GetRoute().GetTimeout().AsDuration().String(),
						Retry:     retryString(rt.GetRoute().GetRetryPolicy()),
						RouteName: rt.GetName(),
					}
					if cl, ok := clusters[h.Cluster]; ok {
						h.SNI, h.SAN, h.HasTLS = tlsOf(t, cl)
					} else {
						t.Errorf("istiod: %s routes %s to %s, which it does not define", w.service, host, h.Cluster)
					}
					view.Hosts[host] = h
				}
			}
		}
		out[w.service] = view
	}
	return out
}

func catchAllString(vh *route.VirtualHost) string {
	rt := vh.GetRoutes()[0]
	if d := rt.GetDirectResponse(); d != nil {
		return fmt.Sprintf("%s %d", vh.GetName(), d.GetStatus())
	}
	return fmt.Sprintf("%s %s", vh.GetName(), rt.GetRoute().GetCluster())
}

func TestIstiodEgressAsUpDoes(t *testing.T) {
	r := renderEgress(t, "istio")
	mc, _ := installedMesh(t, r.install)
	istiod := istiodEgress(t, r, mc)

	// What the render means, in istiod's words.
	b, a := istiod["service-b"], istiod["service-a"]
	pay := b.Hosts[paymentsHost]
	if pay.Cluster != "outbound|80||"+paymentsHost || !pay.HasTLS || pay.SNI != paymentsHost || pay.SAN != paymentsHost || pay.Timeout != "3s" {
		t.Errorf("istiod: service-b's route to %s: %+v", paymentsHost, pay)
	}
	if w := a.Hosts[weatherHost]; w.Cluster != "outbound|8080||"+weatherHost || w.HasTLS || w.Timeout != "800ms" {
		t.Errorf("istiod: service-a's route to %s: %+v", weatherHost, w)
	}
	if _, ok := a.Hosts[paymentsHost]; ok {
		t.Errorf("istiod: service-a, not among payments' callers, has a route to it")
	}
	for svc, v := range istiod {
		if v.CatchAll != "block_all 502" {
			t.Errorf("istiod: %s's catch-all is %q, not REGISTRY_ONLY's block_all 502", svc, v.CatchAll)
		}
	}

	// `up` for the same mesh file.
	l := startEgressMesh(t, egressMeshFile(t))
	for svc, want := range istiod {
		got := l.egress(t, svc+"-sidecar")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n up     %+v\n istiod %+v", svc, got, want)
		}
	}
}

// TestIstiodPassesThroughAsUpDoes: under ALLOW_ANY (Istio's default) every sidecar's catch-all
// is istiod's `allow_any` to the PassthroughCluster, locally as on a cluster, and the declared
// hosts keep their routes.
func TestIstiodPassesThroughAsUpDoes(t *testing.T) {
	text := allowAnyMeshFile(t)
	r := renderEgressFile(t, text)
	mc, _ := installedMesh(t, r.install)
	if mc.GetOutboundTrafficPolicy().GetMode() != meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY {
		t.Fatalf("the install's policy: %v", mc.GetOutboundTrafficPolicy())
	}
	istiod := istiodEgress(t, r, mc)
	l := startEgressMesh(t, text)
	for svc, want := range istiod {
		if want.CatchAll != "allow_any PassthroughCluster" || len(want.Hosts) != 2 {
			t.Errorf("istiod: %s: %+v", svc, want)
		}
		if got := l.egress(t, svc+"-sidecar"); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n up     %+v\n istiod %+v", svc, got, want)
		}
	}
}

// startEgressMesh runs `up` for a mesh file (the egress one, or a variant) on free ports.
func startEgressMesh(t *testing.T, text string) *localMesh {
	t.Helper()
	root := repoRoot(t)
	wasm := tool(t, "MESHTALLY_WASM", filepath.Join(root, "target/wasm32-wasip1/release/meshtally_filter.wasm"), "make wasm")
	service := tool(t, "MESHTALLY_SERVICE", filepath.Join(filepath.Dir(deployerBin(t)), "demo-service"),
		"cargo build -p demo-service")
	envoy := tool(t, "ENVOY_BIN", filepath.Join(root, ".venv/bin/envoy-bin"), "make setup")
	base := freeRun(t, 3)
	l := &localMesh{state: filepath.Join(t.TempDir(), "state"), gateway: freeRun(t, 1), ports: map[string]int{}}
	file := writeTemp(t, "egress-up.yaml", []byte(text+fmt.Sprintf("\nbase_port: %d\n", base)))
	t.Cleanup(func() {
		if out, errOut, err := runErr(deployerBin(t), "down", "--state-dir", l.state); err != nil {
			t.Errorf("deployer down: %v\n%s%s", err, out, errOut)
		}
	})
	run(t, deployerBin(t), "up", "--detach", "--file", file, "--gateway-port", fmt.Sprint(l.gateway),
		"--state-dir", l.state, "--wasm", wasm, "--service-bin", service, "--envoy", envoy)
	return l
}

// egress reads a local sidecar's outbound route table and clusters into an egressView.
func (l *localMesh) egress(t *testing.T, proxy string) egressView {
	t.Helper()
	var boot map[string]any
	readJSON(t, filepath.Join(l.state, "envoy", proxy+".json"), &boot)
	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range xdsResources(t, boot["dynamic_resources"].(map[string]any)["cds_config"]) {
		cl := &clusterv3.Cluster{}
		if err := unmarshalEnvoy(c, cl); err != nil {
			t.Fatalf("%s: a cluster: %v", proxy, err)
		}
		clusters[cl.GetName()] = cl
	}
	view := egressView{Hosts: map[string]egressHost{}}
	statics := boot["static_resources"].(map[string]any)
	for _, ln := range statics["listeners"].([]any) {
		lm := ln.(map[string]any)
		if lm["name"] != "outbound" {
			continue
		}
		hcm := lm["filter_chains"].([]any)[0].(map[string]any)["filters"].([]any)[0].(map[string]any)["typed_config"].(map[string]any)
		rc := &route.RouteConfiguration{}
		if err := unmarshalEnvoy(xdsResources(t, hcm["rds"].(map[string]any)["config_source"])[0], rc); err != nil {
			t.Fatalf("%s: its routes: %v", proxy, err)
		}
		for _, vh := range rc.GetVirtualHosts() {
			if slices.Contains(vh.GetDomains(), "*") {
				view.CatchAll = catchAllString(vh)
				continue
			}
			for _, host := range []string{paymentsHost, weatherHost} {
				if !slices.Contains(vh.GetDomains(), host) {
					continue
				}
				rt := vh.GetRoutes()[0]
				h := egressHost{
					Cluster:   rt.GetRoute().GetCluster(),
					Timeout:   rt.GetRoute().GetTimeout().AsDuration().String(),
					Retry:     retryString(rt.GetRoute().GetRetryPolicy()),
					RouteName: rt.GetName(),
				}
				if cl, ok := clusters[h.Cluster]; ok {
					h.SNI, h.SAN, h.HasTLS = tlsOf(t, cl)
				} else {
					t.Errorf("up: %s routes %s to %s, which it does not define", proxy, host, h.Cluster)
				}
				view.Hosts[host] = h
			}
		}
	}
	return view
}

// unmarshalEnvoy reads one xDS resource as `up` writes it (protobuf JSON, with its `@type`).
func unmarshalEnvoy(resource any, msg proto.Message) error {
	m, _ := resource.(map[string]any)
	plain := map[string]any{}
	for k, v := range m {
		if k != "@type" {
			plain[k] = v
		}
	}
	raw, err := json.Marshal(plain)
	if err != nil {
		return err
	}
	return protojson.Unmarshal(raw, msg)
}

// asAPIServerReads gives the objects' whole numbers the type the API server decodes them to
// (int64), which CEL rules such as the ServiceEntry's port checks take: the YAML stream reader
// here decodes every number as a float64.
func asAPIServerReads(objects []*unstructured.Unstructured) []*unstructured.Unstructured {
	var fix func(v any) any
	fix = func(v any) any {
		switch x := v.(type) {
		case float64:
			if x == float64(int64(x)) {
				return int64(x)
			}
		case map[string]any:
			for k, e := range x {
				x[k] = fix(e)
			}
		case []any:
			for i, e := range x {
				x[i] = fix(e)
			}
		}
		return v
	}
	var out []*unstructured.Unstructured
	for _, o := range objects {
		c := o.DeepCopy()
		fix(c.Object)
		out = append(out, c)
	}
	return out
}
