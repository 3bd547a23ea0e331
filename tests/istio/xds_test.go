package istio

// Step 4: istiod's translation. Pilot's FakeDiscoveryServer gets the render, the pods and
// EndpointSlices a cluster would have and the demo profile's gateway, and generates what istiod
// would push to one sidecar of each service and to the ingress gateway. The assertions read that
// output; a normalised dump per topology is kept in testdata/golden (UPDATE_GOLDEN=1 rewrites).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	istiocluster "istio.io/istio/pkg/cluster"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// translation is what istiod generates for a render: a summary per proxy, keyed by name
// (`<service>` for a sidecar of that service, `istio-ingressgateway` for the gateway).
type translation map[string]proxySummary

// translate runs the fake discovery server on a (maybe altered) render's Istio objects.
func translate(t *testing.T, m *mesh, istioObjects []*unstructured.Unstructured) translation {
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
		ConfigString:           strings.TrimPrefix(string(unstructuredYAML(istioObjects)), "---\n"),
		KubernetesObjectString: strings.ReplaceAll(strings.Join(kube, "\n"), "\n---\n---\n", "\n---\n"),
		MeshConfig:             demoProfile(t).mesh,
	})
	trustDomain := demoProfile(t).mesh.GetTrustDomain()
	out := translation{}
	version := pins(t)["ISTIO_VERSION"]
	for _, w := range c.workloads {
		if _, done := out[w.service]; done {
			continue
		}
		pod := w.pod
		proxy := &model.Proxy{
			Type:            model.SidecarProxy,
			ID:              pod.Name + "." + pod.Namespace,
			IPAddresses:     []string{pod.Status.PodIP},
			ConfigNamespace: pod.Namespace,
			DNSDomain:       pod.Namespace + ".svc.cluster.local",
			Labels:          pod.Labels,
			Metadata: &model.NodeMetadata{
				Namespace: pod.Namespace, Labels: pod.Labels, WorkloadName: w.service, IstioVersion: version,
				ServiceAccount: pod.Spec.ServiceAccountName, ClusterID: istiocluster.ID("Kubernetes"),
			},
		}
		if pod == c.gateway {
			proxy.Type = model.Router
		}
		p := s.SetupProxy(proxy)
		ls := s.Listeners(p)
		rs := s.Routes(p)
		sum := proxySummary{Identity: fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, pod.Namespace, pod.Spec.ServiceAccountName)}
		if pod == c.gateway {
			sum.Gateway = gatewayRoutes(rs)
		} else {
			cs := s.Clusters(p)
			sum.Inbound = []inboundSummary{inboundChains(t, ls, uint32(m.port(w.service)))}
			for _, peer := range m.names() {
				if peer != w.service {
					host := fmt.Sprintf("%s.%s.svc.cluster.local", peer, m.namespace)
					sum.Outbound = append(sum.Outbound, outboundTo(t, ls, rs, cs, host, uint32(m.port(peer))))
				}
			}
		}
		var names []string
		for _, l := range ls {
			for _, fc := range l.GetFilterChains() {
				if h := httpManager(t, fc); h != nil {
					names = append(names, ecdsNames(h)...)
				}
			}
		}
		slices.Sort(names)
		names = slices.Compact(names)
		for _, ec := range s.ConfigGen.BuildExtensionConfiguration(p, s.PushContext(), names, nil) {
			sum.Extensions = append(sum.Extensions, wasmExtension(t, ec.GetName(), ec.GetTypedConfig()))
		}
		out[w.service] = sum
	}
	return out
}

func ecdsNames(h *hcm.HttpConnectionManager) []string {
	var out []string
	for _, f := range h.GetHttpFilters() {
		if f.GetConfigDiscovery() != nil {
			out = append(out, f.GetName())
		}
	}
	return out
}

func TestIstiodTranslation(t *testing.T) {
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			m := render(t, topo)
			got := translate(t, m, m.istioObjects())
			for _, problem := range checkTranslation(t, m, got) {
				t.Error(problem)
			}
			golden(t, filepath.Join("testdata/golden", topo.name+".json"), got)
		})
	}
}

// expected reads what the render asks for, as the assertions need it.
type expected struct {
	gatewayTimeout  string
	meshTimeout     string
	meshRetries     *retries
	plugins         []plugin
	gatewayIdentity string
}

func expectations(t testing.TB, m *mesh) expected {
	t.Helper()
	var e expected
	for _, vs := range m.byKind("VirtualService") {
		gateways, _, _ := unstructured.NestedStringSlice(vs.Object, "spec", "gateways")
		http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
		if len(http) == 0 {
			continue
		}
		first := http[0].(map[string]any)
		timeout := durationString(t, first["timeout"])
		if slices.Contains(gateways, "mesh") {
			e.meshTimeout = timeout
			if r, ok := first["retries"].(map[string]any); ok {
				var attempts uint32
				switch n := r["attempts"].(type) {
				case int64:
					attempts = uint32(n)
				case float64:
					attempts = uint32(n)
				}
				e.meshRetries = &retries{
					Attempts:      attempts,
					PerTryTimeout: durationString(t, r["perTryTimeout"]),
					RetryOn:       fmt.Sprint(r["retryOn"]),
				}
			}
		} else {
			e.gatewayTimeout = timeout
		}
	}
	for _, o := range m.byKind("WasmPlugin") {
		p := o.Object["spec"].(map[string]any)
		config, err := json.Marshal(p["pluginConfig"])
		if err != nil {
			t.Fatal(err)
		}
		sha, _ := p["sha256"].(string)
		pl := plugin{
			ecds: m.namespace + "." + o.GetName() + "~",
			ext:  extension{URL: fmt.Sprint(p["url"]), SHA256: sha, FailOpen: p["failStrategy"] == "FAIL_OPEN", Config: string(config)},
		}
		// Istio's match[].mode: CLIENT (outbound), SERVER (inbound), both when unset.
		pl.client, pl.server = true, true
		if matches, ok := p["match"].([]any); ok && len(matches) > 0 {
			pl.client, pl.server = false, false
			for _, mt := range matches {
				switch mt.(map[string]any)["mode"] {
				case "CLIENT":
					pl.client = true
				case "SERVER":
					pl.server = true
				default:
					pl.client, pl.server = true, true
				}
			}
		}
		e.plugins = append(e.plugins, pl)
	}
	if len(e.plugins) == 0 {
		t.Fatal("no WasmPlugin rendered")
	}
	d := demoProfile(t)
	e.gatewayIdentity = fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", d.mesh.GetTrustDomain(), istioSystem, d.gateway.Spec.Template.Spec.ServiceAccountName)
	return e
}

// plugin is a rendered WasmPlugin: the ECDS resource name part istiod derives from it, what its
// extension config must hold, and which side of a sidecar (client: outbound, server: inbound)
// it applies to.
type plugin struct {
	ecds           string
	ext            extension
	client, server bool
}

// checkPlugins checks which of the rendered plugins a chain runs: exactly those for its side.
func checkPlugins(where string, filters []string, plugins []plugin, inbound bool) []string {
	var problems []string
	for _, p := range plugins {
		want := p.client
		if inbound {
			want = p.server
		}
		has := slices.ContainsFunc(filters, func(f string) bool { return strings.Contains(f, p.ecds) })
		if has != want {
			problems = append(problems, fmt.Sprintf("%s: plugin %s present=%v, want %v: %v", where, p.ecds, has, want, filters))
		}
	}
	return problems
}

// checkDirections checks that every meshtally filter a chain runs is told the chain's side in
// its plugin config: the filter takes its direction from there and never asks the listener.
func checkDirections(t testing.TB, where string, filters []string, exts []extension, side string) []string {
	var problems []string
	for _, e := range exts {
		if !slices.Contains(filters, "ecds:"+e.Name) {
			continue
		}
		if got := sideOf(t, e).Direction; got != side {
			problems = append(problems, fmt.Sprintf("%s: plugin %s runs on the %s side told direction %q", where, e.Name, side, got))
		}
	}
	return problems
}

func durationString(t testing.TB, v any) string {
	s, _ := v.(string)
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d.String()
}

// checkTranslation returns every way istiod's output differs from what the render means.
func checkTranslation(t testing.TB, m *mesh, got translation) []string {
	e := expectations(t, m)
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	gw, ok := got["istio-ingressgateway"]
	if !ok {
		fail("no configuration for the ingress gateway")
	}
	for _, ext := range gw.Extensions {
		fail("the gateway runs extension %s, yet the WasmPlugin selects only meshtally workloads", ext.Name)
	}
	for _, svc := range m.names() {
		host := fmt.Sprintf("%s.%s.svc.cluster.local", svc, m.namespace)
		clusterName := fmt.Sprintf("outbound|%d|v1|%s", m.port(svc), host)
		// Gateway routes: /<svc>/ and /<svc>, rewritten to /, to the v1 subset, with the timeout.
		for _, match := range []string{"prefix:/" + svc + "/", "path:/" + svc} {
			want := gatewayRoute{Match: match, PrefixRewrite: "/", Cluster: clusterName, Timeout: e.gatewayTimeout}
			if !slices.Contains(gw.Gateway, want) {
				fail("gateway: no route %+v; routes: %+v", want, gw.Gateway)
			}
		}
		sc, ok := got[svc]
		if !ok {
			fail("%s: no sidecar configuration", svc)
			continue
		}
		// Inbound: STRICT mTLS; RBAC admits exactly the other services and the gateway.
		var want []string
		for _, peer := range m.names() {
			if peer != svc {
				want = append(want, "exact:"+peerIdentity(got, peer))
			}
		}
		want = append(want, "exact:"+e.gatewayIdentity)
		sort.Strings(want)
		for _, in := range sc.Inbound {
			if in.MTLS != "STRICT" {
				fail("%s: inbound port %d is %s, the render asks STRICT", svc, in.Port, in.MTLS)
			}
			if !reflect.DeepEqual(in.Principals, want) {
				fail("%s: inbound RBAC admits %v, want exactly %v", svc, in.Principals, want)
			}
			problems = append(problems, filterPlacement(svc+" inbound", in.HTTPFilters, true)...)
			problems = append(problems, checkPlugins(svc+" inbound", in.HTTPFilters, e.plugins, true)...)
			problems = append(problems, checkDirections(t, svc+" inbound", in.HTTPFilters, sc.Extensions, "inbound")...)
		}
		// Outbound: ISTIO_MUTUAL to the peer's identity, with the rendered timeout and retries.
		for _, out := range sc.Outbound {
			peer := strings.Split(out.Host, ".")[0]
			wantSAN := []string{"exact:" + peerIdentity(got, peer)}
			if out.TLS != "ISTIO_MUTUAL" || !reflect.DeepEqual(out.SANs, wantSAN) {
				fail("%s → %s: TLS %s with SANs %v, want ISTIO_MUTUAL with %v", svc, peer, out.TLS, out.SANs, wantSAN)
			}
			if wantCluster := fmt.Sprintf("outbound|%d|v1|%s", out.Port, out.Host); out.Cluster != wantCluster {
				fail("%s → %s: routed to %s, want %s", svc, peer, out.Cluster, wantCluster)
			}
			if out.Timeout != e.meshTimeout || !reflect.DeepEqual(out.Retries, e.meshRetries) {
				fail("%s → %s: timeout %s retries %+v, want %s %+v", svc, peer, out.Timeout, out.Retries, e.meshTimeout, e.meshRetries)
			}
			problems = append(problems, filterPlacement(svc+" → "+peer, out.HTTPFilters, false)...)
			problems = append(problems, checkPlugins(svc+" → "+peer, out.HTTPFilters, e.plugins, false)...)
			problems = append(problems, checkDirections(t, svc+" → "+peer, out.HTTPFilters, sc.Extensions, "outbound")...)
		}
		// The filter, delivered by ECDS with the rendered url, digest, failure policy and config.
		if len(sc.Extensions) != len(e.plugins) {
			fail("%s: %d extension configs, want one per WasmPlugin (%d)", svc, len(sc.Extensions), len(e.plugins))
		}
		for _, ext := range sc.Extensions {
			var matched bool
			for _, p := range e.plugins {
				if strings.Contains(ext.Name, p.ecds) {
					matched = true
					want := p.ext
					want.Name = ext.Name
					if !sameExtension(ext, want) {
						fail("%s: extension %+v, want %+v", svc, ext, want)
					}
				}
			}
			if !matched {
				fail("%s: extension %s comes from no rendered WasmPlugin", svc, ext.Name)
			}
		}
	}
	return problems
}

// peerIdentity is the SPIFFE identity istiod gives a service's pods.
func peerIdentity(got translation, svc string) string {
	return got[svc].Identity
}

// filterPlacement checks where phase STATS puts the Wasm filter: after authentication and
// authorization (RBAC), before Istio's own stats filter, and so before the router. (istiod
// puts it right after RBAC, ahead of grpc_stats, fault and cors.)
func filterPlacement(where string, filters []string, inbound bool) []string {
	idx := func(pred func(string) bool) int { return slices.IndexFunc(filters, pred) }
	wasm := idx(func(f string) bool { return strings.Contains(f, "meshtally") })
	rbac := idx(func(f string) bool { return f == "envoy.filters.http.rbac" })
	stats := idx(func(f string) bool { return f == "istio.stats" })
	router := idx(func(f string) bool { return f == "envoy.filters.http.router" })
	var problems []string
	switch {
	case inbound && rbac < 0:
		problems = append(problems, fmt.Sprintf("%s: no RBAC filter in %v", where, filters))
	case wasm < 0:
		// Whether the chain should have one is checkPlugins' question (a plugin's mode).
	case rbac > wasm:
		problems = append(problems, fmt.Sprintf("%s: the filter runs before RBAC: %v", where, filters))
	case stats >= 0 && stats < wasm:
		problems = append(problems, fmt.Sprintf("%s: the filter runs after istio.stats: %v", where, filters))
	case router < wasm:
		problems = append(problems, fmt.Sprintf("%s: the filter is after the router: %v", where, filters))
	}
	return problems
}

func sameExtension(a, b extension) bool {
	var ca, cb any
	if json.Unmarshal([]byte(a.Config), &ca) != nil || json.Unmarshal([]byte(b.Config), &cb) != nil {
		return false
	}
	a.Config, b.Config = "", ""
	return a == b && reflect.DeepEqual(ca, cb)
}

// golden compares v, as indented JSON, with a file; UPDATE_GOLDEN=1 rewrites the file.
func golden(t *testing.T, path string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run `UPDATE_GOLDEN=1 make istio-check` and review the new file", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("istiod's output for this render changed; review it with `UPDATE_GOLDEN=1 make istio-check` "+
			"then `git diff %s`", path)
	}
}
