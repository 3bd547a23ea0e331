package istio

// Traffic rules (issue 13): a mesh file with a 90/10 canary, a header match, timeout, retries,
// fault injection and a circuit breaker, and a service whose versions share traffic. Istio's own
// code judges the render (validate, analyze, the CRDs with CEL) and istiod's translation is read
// for the weighted subset clusters, the fault filter's per-route config, the connection limits
// and outlier detection, at a sidecar and at the ingress gateway; `up`'s xDS files for the same
// mesh file must say the same (its gateway forwards through an outbound listener with the
// sidecars' routes).

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	istiocluster "istio.io/istio/pkg/cluster"
)

// trafficMesh is the example; ports are left to --base-port so `up` can pick free ones.
// deployer's golden test renders the same file.
//
//go:embed testdata/traffic-mesh.yaml
var trafficMesh string

var trafficTopology = topology{name: "traffic", file: trafficMesh}

// rules is what a proxy does with calls to one service, as both istiod's and up's xDS say it.
type rules struct {
	// Weighted clusters of the default route by subset ("" = the whole service), or the one cluster.
	Split map[string]uint32
	// Header match → subset.
	Matches  map[string]string
	Timeout  string
	Abort    string
	Delay    string
	Breakers string
	Outlier  string
}

func subsetOf(cluster string) string {
	if parts := strings.Split(cluster, "|"); len(parts) == 4 {
		return parts[2] // istiod: outbound|port|subset|host
	} else if len(parts) == 2 {
		return parts[1] // up: service|version
	}
	return ""
}

func percentString(p *typev3.FractionalPercent) string {
	scale := map[typev3.FractionalPercent_DenominatorType]float64{
		typev3.FractionalPercent_HUNDRED: 100, typev3.FractionalPercent_TEN_THOUSAND: 10000,
		typev3.FractionalPercent_MILLION: 1000000,
	}[p.GetDenominator()]
	return fmt.Sprintf("%.2f%%", float64(p.GetNumerator())*100/scale)
}

// rulesOf reads a service's virtual host and clusters.
func rulesOf(t testing.TB, vh *route.VirtualHost, clusters []*clusterv3.Cluster, service string) rules {
	t.Helper()
	r := rules{Split: map[string]uint32{}, Matches: map[string]string{}}
	var last *route.Route
	for _, rt := range vh.GetRoutes() {
		if hs := rt.GetMatch().GetHeaders(); len(hs) > 0 {
			h := hs[0]
			value := h.GetStringMatch().GetExact()
			if value == "" {
				value = h.GetExactMatch()
			}
			r.Matches[h.GetName()+"="+value] = subsetOf(rt.GetRoute().GetCluster())
			continue
		}
		last = rt
	}
	if last == nil {
		t.Fatalf("%s: no default route in %v", service, vh.GetName())
	}
	a := last.GetRoute()
	if w := a.GetWeightedClusters(); w != nil {
		for _, c := range w.GetClusters() {
			r.Split[subsetOf(c.GetName())] = c.GetWeight().GetValue()
		}
	} else {
		r.Split[subsetOf(a.GetCluster())] = 100
	}
	r.Timeout = a.GetTimeout().AsDuration().String()
	if cfg, ok := last.GetTypedPerFilterConfig()["envoy.filters.http.fault"]; ok {
		var f faultv3.HTTPFault
		if err := cfg.UnmarshalTo(&f); err != nil {
			t.Fatalf("%s: fault config: %v", service, err)
		}
		if ab := f.GetAbort(); ab != nil {
			r.Abort = fmt.Sprintf("%d at %s", ab.GetHttpStatus(), percentString(ab.GetPercentage()))
		}
		if d := f.GetDelay(); d != nil {
			r.Delay = fmt.Sprintf("%s at %s", d.GetFixedDelay().AsDuration(), percentString(d.GetPercentage()))
		}
	}
	// The clusters the routes name carry the connection limits and outlier detection.
	for _, c := range clusters {
		name := c.GetName()
		if !slices.Contains([]string{a.GetCluster()}, name) && (a.GetWeightedClusters() == nil ||
			!slices.ContainsFunc(a.GetWeightedClusters().GetClusters(), func(w *route.WeightedCluster_ClusterWeight) bool { return w.GetName() == name })) {
			continue
		}
		for _, th := range c.GetCircuitBreakers().GetThresholds() {
			if th.GetPriority() != 0 {
				continue
			}
			r.Breakers = fmt.Sprintf("connections %d pending %d requests %d",
				th.GetMaxConnections().GetValue(), th.GetMaxPendingRequests().GetValue(), th.GetMaxRequests().GetValue())
		}
		if o := c.GetOutlierDetection(); o != nil {
			r.Outlier = fmt.Sprintf("5xx %d interval %s ejection %s max %d%% panic %v",
				o.GetConsecutive_5Xx().GetValue(), o.GetInterval().AsDuration(), o.GetBaseEjectionTime().AsDuration(),
				o.GetMaxEjectionPercent().GetValue(), c.GetCommonLbConfig().GetHealthyPanicThreshold().GetValue())
		}
	}
	return r
}

// istiodRules is what istiod tells service-c's sidecar, and the ingress gateway, about calls to
// service.
func istiodRules(t *testing.T, m *mesh, service string) (rules, rules) {
	t.Helper()
	c := clusterFor(t, m)
	var kube []string
	for _, o := range m.kubeObjects() {
		kube = append(kube, string(toYAML(o.Object)))
	}
	for _, o := range c.extra {
		kube = append(kube, string(toYAML(o)))
	}
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:           strings.TrimPrefix(string(unstructuredYAML(m.istioObjects())), "---\n"),
		KubernetesObjectString: strings.ReplaceAll(strings.Join(kube, "\n"), "\n---\n---\n", "\n---\n"),
		MeshConfig:             demoProfile(t).mesh,
	})
	host := fmt.Sprintf("%s.%s.svc.cluster.local", service, m.namespace)
	var sidecar, gateway *rules
	for _, w := range c.workloads {
		if w.service != "service-c" && w.pod != c.gateway {
			continue
		}
		pod := w.pod
		proxy := &model.Proxy{
			Type: model.SidecarProxy, ID: pod.Name + "." + pod.Namespace, IPAddresses: []string{pod.Status.PodIP},
			ConfigNamespace: pod.Namespace, DNSDomain: pod.Namespace + ".svc.cluster.local", Labels: pod.Labels,
			Metadata: &model.NodeMetadata{Namespace: pod.Namespace, Labels: pod.Labels, WorkloadName: w.service,
				IstioVersion: pins(t)["ISTIO_VERSION"], ServiceAccount: pod.Spec.ServiceAccountName,
				ClusterID: istiocluster.ID("Kubernetes")},
		}
		if pod == c.gateway {
			proxy.Type = model.Router
		}
		p := s.SetupProxy(proxy)
		cs := s.Clusters(p)
		for _, rc := range s.Routes(p) {
			for _, vh := range rc.GetVirtualHosts() {
				switch {
				case pod == c.gateway:
					// The gateway's one virtual host routes every service by path: keep
					// service's routes (`/<service>/…`, with or without a header match).
					mine := &route.VirtualHost{Name: vh.GetName()}
					for _, rt := range vh.GetRoutes() {
						if rt.GetMatch().GetPrefix() == "/"+service+"/" {
							mine.Routes = append(mine.Routes, rt)
						}
					}
					if len(mine.Routes) > 0 {
						r := rulesOf(t, mine, cs, service)
						gateway = &r
					}
				case rc.GetName() == fmt.Sprint(m.port(service)) && slices.Contains(vh.GetDomains(), host):
					r := rulesOf(t, vh, cs, service)
					sidecar = &r
				}
			}
		}
	}
	if sidecar == nil || gateway == nil {
		t.Fatalf("istiod gives no route to %s: sidecar %v, gateway %v", host, sidecar, gateway)
	}
	return *sidecar, *gateway
}

func TestTrafficRulesAreValidIstio(t *testing.T) {
	m := render(t, trafficTopology)
	if len(m.deployments) != 5 {
		t.Errorf("%d Deployments, want one per version (5)", len(m.deployments))
	}
	out, errOut, err := validate(t, unstructuredYAML(m.objects))
	if err != nil || !strings.Contains(string(out)+string(errOut), "is valid") {
		t.Errorf("istioctl validate: %v\n%s%s", err, out, errOut)
	}
	for _, err := range validateCRDs(t, m.istioObjects()) {
		t.Error(err)
	}
	for _, msg := range analyze(t, m, unstructuredYAML(m.objects)) {
		if msg.Level == "Error" || msg.Level == "Warning" {
			t.Errorf("%s %s: %s (%s)", msg.Level, msg.Code, msg.Message, msg.Origin)
		}
	}
}

func TestTrafficRulesInIstiod(t *testing.T) {
	m := render(t, trafficTopology)
	a, aGateway := istiodRules(t, m, "service-a")
	want := rules{
		Split:    map[string]uint32{"v1": 90, "v2": 10},
		Matches:  map[string]string{"x-user-group=beta": "v2"},
		Timeout:  "2s",
		Abort:    "503 at 25.00%",
		Delay:    "300ms at 50.00%",
		Breakers: "connections 1 pending 1 requests 1",
		Outlier:  "5xx 3 interval 1s ejection 30s max 100% panic 0",
	}
	if got, _ := json.Marshal(a); string(got) != string(must(json.Marshal(want))) {
		t.Errorf("service-a in istiod:\n got %s\nwant %s", got, must(json.Marshal(want)))
	}
	// The gateway route carries the same rules as the in-mesh one.
	if got, wantJSON := must(json.Marshal(aGateway)), must(json.Marshal(want)); string(got) != string(wantJSON) {
		t.Errorf("service-a at istiod's gateway:\n got %s\nwant %s", got, wantJSON)
	}
	b, _ := istiodRules(t, m, "service-b")
	if len(b.Split) != 1 || b.Split[""] != 100 || !strings.HasPrefix(b.Outlier, "5xx 3 interval 1s") {
		t.Errorf("service-b in istiod: %+v; want the whole service (no subset) with outlier detection", b)
	}
	// up, on the same mesh file, says the same to service-c's sidecar.
	up := upRules(t)
	for _, c := range []struct {
		proxy, svc string
		istiod     rules
	}{
		{"service-c-sidecar", "service-a", a}, {"service-c-sidecar", "service-b", b},
		{"ingress-gateway", "service-a", aGateway},
	} {
		got, wantJSON := must(json.Marshal(up[c.proxy][c.svc])), must(json.Marshal(c.istiod))
		if string(got) != string(wantJSON) {
			t.Errorf("%s → %s: up\n %s\nistiod\n %s", c.proxy, c.svc, got, wantJSON)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// upRules starts `up --file` with the traffic mesh and reads the outbound rules of service-c's
// sidecar and of the gateway from their xDS files, by proxy and service.
func upRules(t *testing.T) map[string]map[string]rules {
	t.Helper()
	return upRulesFor(t, trafficMesh)
}

// upRulesFor is upRules for another mesh file.
func upRulesFor(t *testing.T, meshFile string) map[string]map[string]rules {
	t.Helper()
	root := repoRoot(t)
	wasm := tool(t, "MESHTALLY_WASM", filepath.Join(root, "target/wasm32-wasip1/release/meshtally_filter.wasm"), "make wasm")
	service := tool(t, "MESHTALLY_SERVICE", filepath.Join(filepath.Dir(deployerBin(t)), "demo-service"), "cargo build -p demo-service")
	envoy := tool(t, "ENVOY_BIN", filepath.Join(root, ".venv/bin/envoy-bin"), "make setup")
	state := filepath.Join(t.TempDir(), "state")
	file := writeTemp(t, "mesh.yaml", []byte(meshFile))
	t.Cleanup(func() {
		if out, errOut, err := runErr(deployerBin(t), "down", "--state-dir", state); err != nil {
			t.Errorf("deployer down: %v\n%s%s", err, out, errOut)
		}
	})
	run(t, deployerBin(t), "up", "--detach", "--file", file, "--base-port", fmt.Sprint(freeRun(t, 3)),
		"--gateway-port", fmt.Sprint(freeRun(t, 1)), "--state-dir", state,
		"--wasm", wasm, "--service-bin", service, "--envoy", envoy)
	out := map[string]map[string]rules{}
	for _, proxy := range []string{"service-c-sidecar", "ingress-gateway"} {
		out[proxy] = xdsRules(t, filepath.Join(state, "xds", proxy))
	}
	return out
}

// xdsRules reads one proxy's outbound routes and clusters, as rules by service.
func xdsRules(t *testing.T, dir string) map[string]rules {
	t.Helper()
	var rds, cds struct {
		Resources []json.RawMessage `json:"resources"`
	}
	readJSON(t, filepath.Join(dir, "rds-outbound.json"), &rds)
	readJSON(t, filepath.Join(dir, "cds.json"), &cds)
	var clusters []*clusterv3.Cluster
	for _, raw := range cds.Resources {
		var c clusterv3.Cluster
		unmarshalAny(t, raw, &c)
		clusters = append(clusters, &c)
	}
	out := map[string]rules{}
	for _, raw := range rds.Resources {
		var rc route.RouteConfiguration
		unmarshalAny(t, raw, &rc)
		for _, vh := range rc.GetVirtualHosts() {
			out[vh.GetName()] = rulesOf(t, vh, clusters, vh.GetName())
		}
	}
	return out
}

// unmarshalAny reads one xDS resource (JSON with its "@type") into msg.
func unmarshalAny(t testing.TB, raw json.RawMessage, msg proto.Message) {
	t.Helper()
	var a anypb.Any
	if err := protojson.Unmarshal(raw, &a); err != nil {
		t.Fatalf("resource: %v\n%s", err, raw)
	}
	if err := a.UnmarshalTo(msg); err != nil {
		t.Fatalf("resource: %v", err)
	}
}
