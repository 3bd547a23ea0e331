package istio

// Traces on a cluster, judged like every render: the Telemetry and the install file (an
// IstioOperator) that `render` writes to monitoring/ pass `istioctl validate`, the Telemetry
// passes the CRD with its CEL rules, `istioctl manifest generate` takes the install file and
// gives the mesh config, `istioctl analyze` finds nothing, and istiod's translation with that
// mesh config puts the Zipkin tracer with meshtally's tags on both sidecar connection managers
// and on the gateway's (with its upstream span). `up --tracing` is held equal to it.
//
// Allowed differences, by design: the collector's cluster and host (istiod's
// `outbound|9411||zipkin.istio-system.svc.cluster.local` is the local mesh's loopback
// `zipkin`), and the tags only istiod adds (istio.mesh_id, istio.cluster_id and the RBAC
// dry-run metadata tags), which name cluster facts a local mesh does not have.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	tracecfg "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	istiocluster "istio.io/istio/pkg/cluster"
	meshcfg "istio.io/istio/pkg/config/mesh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// tracingSampling is what the test renders with and starts `up` with.
const tracingSampling = "25"

// tracingRender is `render --output` of three services with a sampling, read back: the stream's
// objects, the Telemetry and the install file's path.
type tracingRender struct {
	m         *mesh
	telemetry *unstructured.Unstructured
	install   string
}

func renderTracing(t *testing.T) tracingRender {
	t.Helper()
	dir := t.TempDir()
	module := filepath.Join(dir, "meshtally_filter.wasm")
	if err := os.WriteFile(module, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "render")
	run(t, deployerBin(t), "render", "--services", "3", "--sampling", tracingSampling, "--wasm-file", module, "--output", out)
	stream := run(t, deployerBin(t), "render", "--services", "3", "--sampling", tracingSampling, "--wasm-file", module)
	m, err := parseMesh(stream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(out, "monitoring/telemetry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseAll(raw)
	if err != nil || len(objs) != 1 || objs[0].GetKind() != "Telemetry" {
		t.Fatalf("monitoring/telemetry.yaml: %v %v", err, objs)
	}
	return tracingRender{m: m, telemetry: objs[0], install: filepath.Join(out, "monitoring/istio-install.yaml")}
}

// installedMesh is the mesh config `istioctl manifest generate -f install` gives: Istio's own
// reading of the install file, strict about its fields.
func installedMesh(t *testing.T, install string) (*meshconfig.MeshConfig, string) {
	t.Helper()
	manifest := run(t, istioctl(t), "manifest", "generate", "-f", install)
	objs, err := parseAll(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetNamespace() == istioSystem && o.GetName() == "istio" {
			text, _, _ := unstructured.NestedString(o.Object, "data", "mesh")
			mc, err := meshcfg.ApplyMeshConfigDefaults(text)
			if err != nil {
				t.Fatal(err)
			}
			return mc, writeTemp(t, "mesh.yaml", []byte(text))
		}
	}
	t.Fatal("the generated install has no istio-system/istio ConfigMap")
	return nil, ""
}

// zipkinService is the Service Istio's Zipkin and Jaeger addons create, which the provider
// names: without it istiod emits no tracer.
func zipkinService() map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "zipkin", "namespace": istioSystem, "labels": map[string]any{"app": "zipkin"}},
		"spec": map[string]any{
			"selector": map[string]any{"app": "zipkin"},
			"ports":    []any{map[string]any{"name": "http-query", "port": 9411, "targetPort": 9411}},
		},
	}
}

func TestTracingRenderIsValidForIstio(t *testing.T) {
	r := renderTracing(t)
	tele := writeTemp(t, "telemetry.yaml", unstructuredYAML([]*unstructured.Unstructured{r.telemetry}))
	for _, f := range []string{tele, r.install} {
		out, errOut, err := runErr(istioctl(t), "validate", "-f", f)
		if err != nil || !strings.Contains(string(out)+string(errOut), "is valid") {
			t.Errorf("istioctl validate %s: %v\n%s%s", filepath.Base(f), err, out, errOut)
		}
	}
	for _, err := range validateCRDs(t, []*unstructured.Unstructured{r.telemetry}) {
		t.Error(err)
	}
	mc, meshFile := installedMesh(t, r.install)
	var zipkin *meshconfig.MeshConfig_ExtensionProvider
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() == "zipkin" {
			zipkin = p
		}
	}
	if zipkin.GetZipkin().GetService() != "zipkin.istio-system.svc.cluster.local" || zipkin.GetZipkin().GetPort() != 9411 {
		t.Errorf("the install's mesh config has no zipkin provider for zipkin.istio-system:9411: %v", mc.GetExtensionProviders())
	}
	c := clusterFor(t, r.m)
	files := []string{
		writeTemp(t, "render.yaml", append(unstructuredYAML(r.m.objects), unstructuredYAML([]*unstructured.Unstructured{r.telemetry})...)),
		writeTemp(t, "cluster.yaml", toYAML(append(append([]any{}, c.extra...), zipkinService())...)),
	}
	args := append([]string{"analyze", "--use-kube=false", "--all-namespaces", "--output", "json", "--meshConfigFile", meshFile}, files...)
	out, errOut, err := runErr(istioctl(t), args...)
	var msgs []analyzerMessage
	if jerr := json.Unmarshal(out, &msgs); jerr != nil {
		t.Fatalf("istioctl analyze: %v / %v\n%s%s", err, jerr, out, errOut)
	}
	for _, msg := range msgs {
		t.Errorf("%s %s: %s (%s)", msg.Level, msg.Code, msg.Message, msg.Origin)
	}
}

// tracer is one connection manager's tracing, as far as meshtally decides it.
type tracer struct {
	Provider          string
	Path              string
	Version           string
	TraceID128        bool
	SharedSpanContext bool
	Timeout           string
	Random, Client    float64
	Overall           float64
	UpstreamSpan      bool
	Tags              map[string]string
}

// istiodOnlyTag names the tags istiod adds from cluster facts a local mesh does not have.
func istiodOnlyTag(tag string) bool {
	return tag == "istio.mesh_id" || tag == "istio.cluster_id" || strings.HasPrefix(tag, "istio.authorization.dry_run.")
}

func summariseTracing(t testing.TB, where string, tr *hcm.HttpConnectionManager_Tracing) *tracer {
	t.Helper()
	if tr == nil || tr.GetProvider() == nil {
		return nil
	}
	out := &tracer{
		Provider:     tr.GetProvider().GetName(),
		Random:       tr.GetRandomSampling().GetValue(),
		Client:       tr.GetClientSampling().GetValue(),
		Overall:      tr.GetOverallSampling().GetValue(),
		UpstreamSpan: tr.GetSpawnUpstreamSpan().GetValue(),
		Tags:         map[string]string{},
	}
	z := &tracecfg.ZipkinConfig{}
	if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(z); err != nil {
		t.Fatalf("%s: the tracer is not Zipkin: %v", where, err)
	}
	out.Version = z.GetCollectorEndpointVersion().String()
	out.TraceID128 = z.GetTraceId_128Bit()
	out.SharedSpanContext = z.GetSharedSpanContext().GetValue()
	if uri := z.GetCollectorService().GetHttpUri(); uri != nil {
		u, err := url.Parse(uri.GetUri())
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		out.Path = u.Path
		out.Timeout = uri.GetTimeout().AsDuration().String()
	} else {
		out.Path = z.GetCollectorEndpoint()
	}
	for _, tag := range tr.GetCustomTags() {
		if istiodOnlyTag(tag.GetTag()) {
			continue
		}
		var v string
		switch {
		case tag.GetRequestHeader() != nil:
			v = "header:" + tag.GetRequestHeader().GetName() + " default " + tag.GetRequestHeader().GetDefaultValue()
		case tag.GetLiteral() != nil:
			v = "literal:" + tag.GetLiteral().GetValue()
		case tag.GetValue() != "":
			v = "value:" + tag.GetValue()
		default:
			v = fmt.Sprintf("other:%v", tag)
		}
		out.Tags[tag.GetTag()] = v
	}
	return out
}

// tracers are a proxy's traced connection managers by role: `inbound`, `outbound:<peer>`,
// `gateway`.
type tracers map[string]*tracer

func istiodTracers(t *testing.T, r tracingRender, mc *meshconfig.MeshConfig) map[string]tracers {
	t.Helper()
	c := clusterFor(t, r.m)
	var kube []string
	for _, o := range r.m.kubeObjects() {
		kube = append(kube, string(toYAML(o.Object)))
	}
	for _, o := range append(append([]any{}, c.extra...), zipkinService()) {
		kube = append(kube, string(toYAML(o)))
	}
	istio := append(append([]*unstructured.Unstructured{}, r.m.istioObjects()...), r.telemetry)
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:           strings.TrimPrefix(string(unstructuredYAML(istio)), "---\n"),
		KubernetesObjectString: strings.ReplaceAll(strings.Join(kube, "\n"), "\n---\n---\n", "\n---\n"),
		MeshConfig:             mc,
	})
	version := pins(t)["ISTIO_VERSION"]
	out := map[string]tracers{}
	for _, w := range c.workloads {
		if _, done := out[w.service]; done {
			continue
		}
		pod := w.pod
		proxy := &model.Proxy{
			Type: model.SidecarProxy, ID: pod.Name + "." + pod.Namespace, IPAddresses: []string{pod.Status.PodIP},
			ConfigNamespace: pod.Namespace, DNSDomain: pod.Namespace + ".svc.cluster.local", Labels: pod.Labels,
			Metadata: &model.NodeMetadata{
				Namespace: pod.Namespace, Labels: pod.Labels, WorkloadName: w.service, IstioVersion: version,
				ServiceAccount: pod.Spec.ServiceAccountName, ClusterID: istiocluster.ID("Kubernetes"),
			},
		}
		if pod == c.gateway {
			proxy.Type = model.Router
		}
		ls := s.Listeners(s.SetupProxy(proxy))
		got := tracers{}
		for _, l := range ls {
			for _, fc := range l.GetFilterChains() {
				h := httpManager(t, fc)
				if h == nil {
					continue
				}
				where := ""
				switch {
				case pod == c.gateway:
					where = "gateway"
				case l.GetName() == "virtualInbound" && fc.GetFilterChainMatch().GetDestinationPort().GetValue() == uint32(r.m.port(w.service)):
					where = "inbound"
				default:
					for _, peer := range r.m.names() {
						if peer != w.service && l.GetName() == fmt.Sprintf("0.0.0.0_%d", r.m.port(peer)) {
							where = "outbound:" + peer
						}
					}
				}
				if where != "" {
					got[where] = summariseTracing(t, w.service+" "+where, h.GetTracing())
				}
			}
		}
		out[w.service] = got
	}
	return out
}

func TestIstiodTracesAsUpDoes(t *testing.T) {
	r := renderTracing(t)
	mc, _ := installedMesh(t, r.install)
	istiod := istiodTracers(t, r, mc)
	gw := istiod["istio-ingressgateway"]
	if gw["gateway"] == nil || !gw["gateway"].UpstreamSpan {
		t.Fatalf("istiod's gateway: no tracer with an upstream span: %+v", gw["gateway"])
	}
	for _, svc := range r.m.names() {
		got := istiod[svc]
		roles := []string{"inbound"}
		for _, peer := range r.m.names() {
			if peer != svc {
				roles = append(roles, "outbound:"+peer)
			}
		}
		for _, role := range roles {
			tr := got[role]
			if tr == nil {
				t.Errorf("istiod: %s %s has no tracer", svc, role)
				continue
			}
			if tr.UpstreamSpan || tr.Random != 25 || !tr.TraceID128 || tr.SharedSpanContext || tr.Path != "/api/v2/spans" {
				t.Errorf("istiod: %s %s: %+v", svc, role, tr)
			}
			// Ours, and Istio's version tag: on a SERVER span, the version that answered.
			for _, tag := range []string{"mesh.hops", "mesh.peer_verified", "mesh.source", "istio.canonical_revision"} {
				if tr.Tags[tag] == "" {
					t.Errorf("istiod: %s %s lacks the %s tag: %v", svc, role, tag, tr.Tags)
				}
			}
		}
	}

	// `up --tracing --sampling 25` for the same mesh: the same tracer on every connection
	// manager meshtally traces.
	l := startLocalMesh(t, r.m, "--tracing="+fmt.Sprint(freeRun(t, 1)), "--sampling", tracingSampling)
	for _, svc := range append(r.m.names(), "istio-ingressgateway") {
		proxy, want := svc+"-sidecar", istiod[svc]
		if svc == "istio-ingressgateway" {
			proxy = "ingress-gateway"
		}
		got := l.tracers(t, proxy, r.m)
		if len(got) != len(want) {
			t.Errorf("%s: up traces %v, istiod %v", svc, keys(got), keys(want))
		}
		for role, w := range want {
			if !reflect.DeepEqual(got[role], w) {
				t.Errorf("%s %s:\n up     %+v\n istiod %+v", svc, role, got[role], w)
			}
		}
	}
}

func keys(m tracers) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// tracers reads a local proxy's traced connection managers from its bootstrap (listeners are
// static there): `inbound` (the mTLS chain), `outbound:<peer>` for every peer (one listener
// serves them all), `gateway` (the front listener).
func (l *localMesh) tracers(t *testing.T, proxy string, m *mesh) tracers {
	t.Helper()
	var boot struct {
		StaticResources struct {
			Listeners []struct {
				Name         string `json:"name"`
				FilterChains []struct {
					Filters []struct {
						TypedConfig struct {
							Tracing json.RawMessage `json:"tracing"`
						} `json:"typed_config"`
					} `json:"filters"`
					TransportSocket json.RawMessage `json:"transport_socket"`
				} `json:"filter_chains"`
			} `json:"listeners"`
		} `json:"static_resources"`
	}
	readJSON(t, filepath.Join(l.state, "envoy", proxy+".json"), &boot)
	out := tracers{}
	for _, ln := range boot.StaticResources.Listeners {
		for _, fc := range ln.FilterChains {
			for _, f := range fc.Filters {
				if len(f.TypedConfig.Tracing) == 0 {
					continue
				}
				tr := &hcm.HttpConnectionManager_Tracing{}
				if err := protojson.Unmarshal(f.TypedConfig.Tracing, tr); err != nil {
					t.Fatalf("%s %s tracing: %v", proxy, ln.Name, err)
				}
				s := summariseTracing(t, proxy+" "+ln.Name, tr)
				switch ln.Name {
				case "inbound":
					if fc.TransportSocket != nil {
						out["inbound"] = s
					}
				case "outbound":
					for _, peer := range m.names() {
						if peer+"-sidecar" != proxy {
							out["outbound:"+peer] = s
						}
					}
				case "ingress":
					out["gateway"] = s
				default:
					t.Errorf("%s: tracing on an unexpected listener %s", proxy, ln.Name)
				}
			}
		}
	}
	return out
}
