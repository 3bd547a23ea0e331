package istio

// The Gateway API render (issue 25), judged by Istio as the Istio-API render is: istioctl
// validate and analyze, the Gateway API CRDs (from sigs.k8s.io/gateway-api at the version
// scripts/versions.env pins, the one go.mod requires) with their CEL rules, and istiod's
// translation: for the same mesh, the xDS istiod derives from the HTTPRoutes must equal the xDS
// it derives from the VirtualServices, at every sidecar and at the ingress gateway, except for
// the differences named in allowedDifferences below; nothing else may differ.

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	istiocluster "istio.io/istio/pkg/cluster"
	"istio.io/istio/pkg/config/crd"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// gatewayAPIMesh is the traffic mesh less what Gateway API cannot say (fault, retry_on 5xx).
//
//go:embed testdata/gateway-api-mesh.yaml
var gatewayAPIMesh string

// gatewayAPITopologies are rendered with --api gateway-api (the mesh file says so itself);
// each has an Istio-API twin, the same flags with --api istio.
var gatewayAPITopologies = []topology{
	{name: "gw-traffic", file: gatewayAPIMesh},
	{name: "gw-one-service", args: []string{"--services", "1", "--api", "gateway-api"}},
	{name: "gw-three-services", args: []string{"--services", "3", "--api", "gateway-api"}},
	{name: "gw-twelve-services", args: []string{"--services", "12", "--api", "gateway-api"}},
}

// istioTwin is the same mesh rendered in Istio's API: the flag wins over the file's `api`.
func istioTwin(topo topology) topology {
	twin := topology{name: topo.name + "-as-istio", file: topo.file}
	for i := 0; i < len(topo.args); i++ {
		if topo.args[i] == "--api" {
			i++
			continue
		}
		twin.args = append(twin.args, topo.args[i])
	}
	twin.args = append(twin.args, "--api", "istio")
	return twin
}

// gatewayAPIObjects are the documents of Gateway API kinds.
func (m *mesh) gatewayAPIObjects() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m.objects {
		if strings.HasPrefix(o.GetAPIVersion(), "gateway.networking.k8s.io/") {
			out = append(out, o)
		}
	}
	return out
}

var (
	gwValidatorMu sync.Mutex
	gwValidators  = map[string]*crd.Validator{}
)

// gatewayAPIDir is $GOMODCACHE/sigs.k8s.io/gateway-api@<GATEWAY_API_VERSION>, after checking
// that go.mod requires that same version (so istiod's Go types and the CRDs are one release).
func gatewayAPIDir(t testing.TB) string {
	t.Helper()
	pin := pins(t)["GATEWAY_API_VERSION"]
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	required := ""
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "sigs.k8s.io/gateway-api" {
			required = f[1]
		}
	}
	if pin == "" || required != pin {
		t.Fatalf("scripts/versions.env pins GATEWAY_API_VERSION=%q but tests/istio/go.mod requires sigs.k8s.io/gateway-api %q", pin, required)
	}
	dir, err := istioModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	// istioModuleDir is <cache>/istio.io/istio@<v>: the cache is two levels up.
	return filepath.Join(filepath.Dir(filepath.Dir(dir)), "sigs.k8s.io", "gateway-api@"+pin)
}

// gatewayAPIValidator checks objects against one channel's CRDs, as the API server would.
func gatewayAPIValidator(t testing.TB, channel string) *crd.Validator {
	t.Helper()
	gwValidatorMu.Lock()
	defer gwValidatorMu.Unlock()
	if v, ok := gwValidators[channel]; ok {
		return v
	}
	dir := filepath.Join(gatewayAPIDir(t), "config", "crd", channel)
	var files []string
	for _, kind := range []string{"gateways", "httproutes", "gatewayclasses", "referencegrants"} {
		files = append(files, filepath.Join(dir, "gateway.networking.k8s.io_"+kind+".yaml"))
	}
	v, err := crd.NewValidatorFromFiles(files...)
	if err != nil {
		t.Fatal(err)
	}
	gwValidators[channel] = v
	return v
}

func validateGatewayAPI(t testing.TB, channel string, objects []*unstructured.Unstructured) []error {
	v := gatewayAPIValidator(t, channel)
	var errs []error
	for _, o := range objects {
		// As the API server reads them: integers as int64 (the YAML decoder made them float64,
		// which the CRDs' CEL rules refuse to compare with ints).
		raw, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		typed := &unstructured.Unstructured{}
		if err := typed.UnmarshalJSON(raw); err != nil {
			t.Fatal(err)
		}
		if err := v.ValidateCustomResource(typed); err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", o.GetKind(), o.GetName(), err))
		}
	}
	return errs
}

func TestGatewayAPIRenderIsValid(t *testing.T) {
	for _, topo := range gatewayAPITopologies {
		t.Run(topo.name, func(t *testing.T) {
			m := render(t, topo)
			gw := m.gatewayAPIObjects()
			routes := 0
			for _, o := range gw {
				if o.GetKind() == "HTTPRoute" {
					routes++
				}
			}
			// A Gateway, and per service one HTTPRoute in the mesh and one at the ingress.
			if want := 2*len(m.deployments) + 1; len(m.byKind("Gateway")) != 1 || routes < len(istioTwinNames(t, topo))*2 {
				t.Fatalf("%d Gateway API objects (%d HTTPRoutes), want a Gateway and two routes a service (about %d)", len(gw), routes, want)
			}
			out, errOut, err := validate(t, unstructuredYAML(m.objects))
			if err != nil || !strings.Contains(string(out)+string(errOut), "is valid") {
				t.Errorf("istioctl validate: %v\n%s%s", err, out, errOut)
			}
			for _, msg := range analyze(t, m, unstructuredYAML(m.objects)) {
				t.Errorf("istioctl analyze: %s %s: %s (%s)", msg.Level, msg.Code, msg.Message, msg.Origin)
			}
			for _, err := range validateGatewayAPI(t, "experimental", gw) {
				t.Error(err)
			}
			for _, err := range validateCRDs(t, m.istioObjects()) {
				t.Error(err)
			}
			t.Logf("%d Gateway API and %d Istio objects valid against the CRDs", len(gw), len(m.istioObjects()))
		})
	}
}

// The standard channel's CRDs have no HTTPRoute `retry`: a render for them leaves it out and
// passes them, and the experimental render (which retries) does not: the check can fail.
func TestGatewayAPIStandardChannel(t *testing.T) {
	standard := render(t, topology{name: "gw-standard", file: "api: gateway-api\ngateway_api_channel: standard\n" +
		"services:\n  - {name: service-a, retries: {attempts: 0}}\n  - {name: service-b, retries: {attempts: 0}}\n"})
	for _, err := range validateGatewayAPI(t, "standard", standard.gatewayAPIObjects()) {
		t.Error(err)
	}
	errs := validateGatewayAPI(t, "standard", render(t, gatewayAPITopologies[0]).gatewayAPIObjects())
	if len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), "retry") {
		t.Errorf("the experimental render passed the standard CRDs: %v", errs)
	}
}

// istioTwinNames are the services of a topology (per-version Services left out).
func istioTwinNames(t testing.TB, topo topology) []string {
	return render(t, istioTwin(topo)).names()
}

// flow is what a proxy does with requests for one service, as istiod's xDS says it, with the
// names that differ by design already normalised (see normaliseCluster, normaliseMatch).
type flow struct {
	Routes   []flowRoute       `json:"routes"`
	Clusters map[string]string `json:"clusters"`
}

type flowRoute struct {
	Match    string            `json:"match"`
	Headers  []string          `json:"headers,omitempty"`
	Clusters map[string]uint32 `json:"clusters"`
	Timeout  string            `json:"timeout"`
	Retry    string            `json:"retry,omitempty"`
	Rewrite  []string          `json:"rewrite,omitempty"`
	Filters  []string          `json:"per_filter_config,omitempty"`
	Mirror   int               `json:"mirrors,omitempty"`
	Other    string            `json:"other,omitempty"`
}

// allowedDifferences are the only ways the two renders' xDS may differ; each is normalised
// away before the comparison, and each is checked to be what it says (see the test).
var allowedDifferences = []string{
	"cluster names: a version is a subset of the service's host (outbound|P|v1|svc.ns…) in Istio's API, " +
		"and its own Service's host (outbound|P||svc-v1.ns…) in Gateway API",
	"per-version hosts: Gateway API's per-version Services are hosts of their own, so every sidecar " +
		"also has their virtual hosts and clusters (with the service's DestinationRule policy)",
	"ingress path: `/svc/` (prefix) and `/svc` (exact) in Istio's API are one `/svc` path-separated prefix " +
		"in Gateway API, matching the same requests, rewritten to `/` alike",
	"route names: VirtualService route names in Istio's API, <ns>.<httproute>.<rule> in Gateway API",
}

// normaliseCluster names a cluster by service and version: `svc/v1` for a subset or a
// per-version host, `svc/*` for the service's whole host.
func normaliseCluster(name string, versionHosts map[string]string) string {
	parts := strings.Split(name, "|")
	if len(parts) != 4 {
		return name
	}
	host := strings.Split(parts[3], ".")[0]
	if parts[2] != "" {
		return host + "/" + parts[2]
	}
	if sv, ok := versionHosts[host]; ok {
		return sv
	}
	return host + "/*"
}

// normaliseMatch spells a route's path match; at the ingress, the Istio form's `/svc/` prefix
// and `/svc` exact match and Gateway API's `/svc` path-separated prefix all read `segments:/svc`.
func normaliseMatch(m *route.RouteMatch, gateway bool) string {
	s := matchString(m)
	if !gateway {
		return s
	}
	switch {
	case strings.HasPrefix(s, "prefix:") && strings.HasSuffix(s, "/") && s != "prefix:/":
		return "segments:" + strings.TrimSuffix(strings.TrimPrefix(s, "prefix:"), "/")
	case strings.HasPrefix(s, "path:"):
		return "segments:" + strings.TrimPrefix(s, "path:")
	case strings.HasPrefix(s, "path_separated_prefix:"):
		return "segments:" + strings.TrimPrefix(s, "path_separated_prefix:")
	}
	return s
}

func retryString(rp *route.RetryPolicy) string {
	if rp == nil {
		return ""
	}
	on := strings.Split(rp.GetRetryOn(), ",")
	sort.Strings(on)
	return fmt.Sprintf("attempts %d per-try %s on %s codes %v hosts %v/%d backoff %v",
		rp.GetNumRetries().GetValue(), rp.GetPerTryTimeout().AsDuration(), strings.Join(on, ","),
		rp.GetRetriableStatusCodes(), len(rp.GetRetryHostPredicate()), rp.GetHostSelectionRetryMaxAttempts(),
		rp.GetRetryBackOff().GetBaseInterval().AsDuration())
}

// rewriteEffect is what a gateway route does to the paths of service svc it matches, as
// `path→rewritten` pairs: the Istio form's prefix rewrite and Gateway API's regex rewrite are
// compared by what they do, not how they are spelled.
func rewriteEffect(rt *route.Route, svc string) []string {
	a := rt.GetRoute()
	var out []string
	for _, p := range []string{"/" + svc, "/" + svc + "/", "/" + svc + "/x/y"} {
		var matched bool
		var prefix string
		switch m := rt.GetMatch().GetPathSpecifier().(type) {
		case *route.RouteMatch_Prefix:
			matched, prefix = strings.HasPrefix(p, m.Prefix), m.Prefix
		case *route.RouteMatch_Path:
			matched, prefix = p == m.Path, m.Path
		case *route.RouteMatch_PathSeparatedPrefix:
			matched = p == m.PathSeparatedPrefix || strings.HasPrefix(p, m.PathSeparatedPrefix+"/")
			prefix = m.PathSeparatedPrefix
		}
		if !matched {
			continue
		}
		result := p
		switch {
		case a.GetPrefixRewrite() != "":
			result = a.GetPrefixRewrite() + strings.TrimPrefix(strings.TrimPrefix(p, prefix), "/")
		case a.GetRegexRewrite() != nil:
			re := regexp.MustCompile(a.GetRegexRewrite().GetPattern().GetRegex())
			sub := regexp.MustCompile(`\\(\d)`).ReplaceAllString(a.GetRegexRewrite().GetSubstitution(), "$${$1}")
			result = re.ReplaceAllString(p, sub)
		}
		out = append(out, p+"→"+result)
	}
	return out
}

func flowRouteOf(rt *route.Route, gateway bool, svc string, versionHosts map[string]string) flowRoute {
	a := rt.GetRoute()
	fr := flowRoute{
		Match:    normaliseMatch(rt.GetMatch(), gateway),
		Clusters: map[string]uint32{},
		Timeout:  a.GetTimeout().AsDuration().String(),
		Retry:    retryString(a.GetRetryPolicy()),
		Rewrite:  rewriteEffect(rt, svc),
		Mirror:   len(a.GetRequestMirrorPolicies()),
	}
	for _, h := range rt.GetMatch().GetHeaders() {
		fr.Headers = append(fr.Headers, h.GetName()+"="+stringMatch(h.GetStringMatch()))
	}
	if w := a.GetWeightedClusters(); w != nil {
		for _, c := range w.GetClusters() {
			fr.Clusters[normaliseCluster(c.GetName(), versionHosts)] = c.GetWeight().GetValue()
		}
	} else if a != nil {
		fr.Clusters[normaliseCluster(a.GetCluster(), versionHosts)] = 100
	}
	for name := range rt.GetTypedPerFilterConfig() {
		fr.Filters = append(fr.Filters, name)
	}
	sort.Strings(fr.Filters)
	if rt.GetDirectResponse() != nil || rt.GetRedirect() != nil {
		fr.Other = fmt.Sprintf("direct %v redirect %v", rt.GetDirectResponse(), rt.GetRedirect())
	}
	return fr
}

// clusterString is the policy a cluster carries: load balancing, TLS, limits, outlier detection.
func clusterString(t testing.TB, c *clusterv3.Cluster) string {
	tls, sans := upstreamTLS(t, c)
	s := fmt.Sprintf("lb %v tls %s sans %v", c.GetLbPolicy(), tls, sans)
	for _, th := range c.GetCircuitBreakers().GetThresholds() {
		s += fmt.Sprintf(" breakers[%v] %d/%d/%d", th.GetPriority(), th.GetMaxConnections().GetValue(),
			th.GetMaxPendingRequests().GetValue(), th.GetMaxRequests().GetValue())
	}
	if o := c.GetOutlierDetection(); o != nil {
		s += fmt.Sprintf(" outlier 5xx %d interval %s ejection %s max %d%% panic %v",
			o.GetConsecutive_5Xx().GetValue(), o.GetInterval().AsDuration(), o.GetBaseEjectionTime().AsDuration(),
			o.GetMaxEjectionPercent().GetValue(), c.GetCommonLbConfig().GetHealthyPanicThreshold().GetValue())
	}
	return s
}

// flows is, per proxy (`<workload>` or `ingress`) and called service, the flow istiod
// configures; extraHosts are the virtual host domains of outbound route configs, per proxy.
type flows struct {
	byProxy    map[string]map[string]flow
	extraHosts map[string][]string
}

// fakeIstiod is istiod fed render m as a cluster would hold it: its Istio and Gateway API
// objects as config, and every Kubernetes object (Gateway API ones included: the gateway
// controller reads them from the cluster) with the pods and EndpointSlices of clusterFor.
func fakeIstiod(t *testing.T, m *mesh) *xds.FakeDiscoveryServer {
	t.Helper()
	c := clusterFor(t, m)
	var kube []string
	for _, o := range m.kubeObjects() {
		if o.GetKind() == "Namespace" {
			// The API server labels every Namespace with its name; the Gateway admits the
			// mesh's routes by that label.
			o = o.DeepCopy()
			labels := o.GetLabels()
			if labels == nil {
				labels = map[string]string{}
			}
			labels["kubernetes.io/metadata.name"] = o.GetName()
			o.SetLabels(labels)
		}
		kube = append(kube, string(toYAML(o.Object)))
	}
	for _, o := range c.extra {
		kube = append(kube, string(toYAML(o)))
	}
	config := append(m.istioObjects(), m.gatewayAPIObjects()...)
	return xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:           strings.TrimPrefix(string(unstructuredYAML(config)), "---\n"),
		KubernetesObjectString: strings.ReplaceAll(strings.Join(kube, "\n"), "\n---\n---\n", "\n---\n"),
		MeshConfig:             demoProfile(t).mesh,
	})
}

// versionHostsOf maps each per-version Service of a render to `svc/version`.
func versionHostsOf(m *mesh) map[string]string {
	out := map[string]string{}
	for _, svc := range m.services {
		if v := svc.Labels["version"]; v != "" {
			out[svc.Name] = svc.Labels["app"] + "/" + v
		}
	}
	return out
}

// istiodFlows translates render m (its Istio and Gateway API objects) and reads every
// sidecar's and the ingress gateway's flows to the services.
func istiodFlows(t *testing.T, m *mesh, services []string) flows {
	t.Helper()
	c := clusterFor(t, m)
	s := fakeIstiod(t, m)
	versionHosts := versionHostsOf(m)
	out := flows{byProxy: map[string]map[string]flow{}, extraHosts: map[string][]string{}}
	seen := map[string]bool{}
	for _, w := range c.workloads {
		if seen[w.service] {
			continue
		}
		seen[w.service] = true
		pod := w.pod
		proxy := &model.Proxy{
			Type: model.SidecarProxy, ID: pod.Name + "." + pod.Namespace, IPAddresses: []string{pod.Status.PodIP},
			ConfigNamespace: pod.Namespace, DNSDomain: pod.Namespace + ".svc.cluster.local", Labels: pod.Labels,
			Metadata: &model.NodeMetadata{Namespace: pod.Namespace, Labels: pod.Labels, WorkloadName: w.service,
				IstioVersion: pins(t)["ISTIO_VERSION"], ServiceAccount: pod.Spec.ServiceAccountName,
				ClusterID: istiocluster.ID("Kubernetes")},
		}
		name := w.service
		if pod == c.gateway {
			proxy.Type = model.Router
			name = "ingress"
		}
		p := s.SetupProxy(proxy)
		cs := s.Clusters(p)
		byCluster := map[string]*clusterv3.Cluster{}
		for _, cl := range cs {
			byCluster[cl.GetName()] = cl
		}
		perService := map[string]flow{}
		add := func(svc string, rt *route.Route, gateway bool) {
			f := perService[svc]
			if f.Clusters == nil {
				f.Clusters = map[string]string{}
			}
			fr := flowRouteOf(rt, gateway, svc, versionHosts)
			// The Istio form's two ingress matches of one rule (`/svc/` and `/svc`) are one
			// route here, doing to each path what it did.
			if n := len(f.Routes); n > 0 && gateway {
				last := f.Routes[n-1]
				merged := fr
				merged.Rewrite = append(slices.Clone(last.Rewrite), fr.Rewrite...)
				last.Rewrite = merged.Rewrite
				if a, b := must(json.Marshal(last)), must(json.Marshal(merged)); string(a) == string(b) {
					sort.Strings(merged.Rewrite)
					f.Routes[n-1] = merged
					perService[svc] = f
					return
				}
			}
			sort.Strings(fr.Rewrite)
			f.Routes = append(f.Routes, fr)
			names := []string{rt.GetRoute().GetCluster()}
			for _, wc := range rt.GetRoute().GetWeightedClusters().GetClusters() {
				names = append(names, wc.GetName())
			}
			for _, n := range names {
				if cl, ok := byCluster[n]; ok {
					f.Clusters[normaliseCluster(n, versionHosts)] = clusterString(t, cl)
				}
			}
			perService[svc] = f
		}
		for _, rc := range s.Routes(p) {
			for _, vh := range rc.GetVirtualHosts() {
				if pod == c.gateway {
					for _, rt := range vh.GetRoutes() {
						for _, svc := range services {
							if normaliseMatch(rt.GetMatch(), true) == "segments:/"+svc {
								add(svc, rt, true)
							}
						}
					}
					continue
				}
				for _, d := range vh.GetDomains() {
					if strings.HasSuffix(d, ".svc.cluster.local") {
						out.extraHosts[name] = append(out.extraHosts[name], d)
					}
				}
				for _, svc := range services {
					host := fmt.Sprintf("%s.%s.svc.cluster.local", svc, m.namespace)
					if rc.GetName() == fmt.Sprint(m.port(svc)) && slices.Contains(vh.GetDomains(), host) {
						for _, rt := range vh.GetRoutes() {
							add(svc, rt, false)
						}
					}
				}
			}
		}
		sort.Strings(out.extraHosts[name])
		out.byProxy[name] = perService
	}
	return out
}

func TestGatewayAPIEqualsIstioAPIInIstiod(t *testing.T) {
	for _, d := range allowedDifferences {
		t.Logf("allowed difference: %s", d)
	}
	for _, topo := range gatewayAPITopologies {
		t.Run(topo.name, func(t *testing.T) {
			gw := render(t, topo)
			istio := render(t, istioTwin(topo))
			services := istio.names()
			want := istiodFlows(t, istio, services)
			wantJSON := must(json.MarshalIndent(want.byProxy, "", " "))
			// istiod translates Gateway API objects asynchronously: read until the translation
			// is there, then judge once.
			var got flows
			deadline := time.Now().Add(20 * time.Second)
			for {
				got = istiodFlows(t, gw, services)
				if string(must(json.MarshalIndent(got.byProxy, "", " "))) == string(wantJSON) || time.Now().After(deadline) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			gotJSON := must(json.MarshalIndent(got.byProxy, "", " "))
			if dir := os.Getenv("MESHTALLY_FLOWS_DIR"); dir != "" {
				// For a reader chasing a difference: both sides whole, for `diff`.
				for name, b := range map[string][]byte{"istio": wantJSON, "gateway-api": gotJSON} {
					if err := os.WriteFile(filepath.Join(dir, topo.name+"."+name+".json"), b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("istiod's xDS differs beyond the allowed differences:\n%s", lineDiff(string(wantJSON), string(gotJSON)))
			}
			// The comparison is not empty: every proxy has a flow to every service.
			for proxy, perService := range want.byProxy {
				if len(perService) != len(services) {
					t.Errorf("%s: flows to %d services, want %d", proxy, len(perService), len(services))
				}
			}
			// The only extra hosts are the per-version Services.
			var versionHosts []string
			for _, s := range gw.services {
				if s.Labels["version"] != "" {
					versionHosts = append(versionHosts, fmt.Sprintf("%s.%s.svc.cluster.local", s.Name, gw.namespace))
				}
			}
			for proxy, hosts := range got.extraHosts {
				var extra []string
				for _, h := range hosts {
					if !slices.Contains(want.extraHosts[proxy], h) {
						extra = append(extra, h)
					}
				}
				for _, h := range want.extraHosts[proxy] {
					if !slices.Contains(hosts, h) {
						t.Errorf("%s: host %s is missing in the Gateway API form", proxy, h)
					}
				}
				for _, h := range extra {
					if !slices.Contains(versionHosts, h) {
						t.Errorf("%s: extra host %s is no per-version Service", proxy, h)
					}
				}
			}
			t.Logf("%d proxies agree on %d services", len(want.byProxy), len(services))
		})
	}
}

// lineDiff shows the lines of b that are not at the same place in a, with context.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("%4d istio: %s\n%4d gw:    %s", i+1, x, i+1, y))
		}
		if len(out) > 40 {
			out = append(out, "…")
			break
		}
	}
	return strings.Join(out, "\n")
}

// asSubset names a per-version Service's cluster as the Istio form names the version's subset
// (the first allowed difference), so the traffic checks' readers apply unchanged.
func asSubset(name string, versionHosts map[string]string) string {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || parts[2] != "" {
		return name
	}
	host, domain, _ := strings.Cut(parts[3], ".")
	sv, ok := versionHosts[host]
	if !ok {
		return name
	}
	svc, version, _ := strings.Cut(sv, "/")
	return strings.Join([]string{parts[0], parts[1], version, svc + "." + domain}, "|")
}

// istiodGatewayAPIRules is istiodRules for the Gateway API render: what istiod tells
// service-c's sidecar and the ingress gateway about calls to service, read once istiod has
// translated the HTTPRoutes, per-version clusters named as subsets.
func istiodGatewayAPIRules(t *testing.T, m *mesh, service string) (rules, rules) {
	t.Helper()
	c := clusterFor(t, m)
	s := fakeIstiod(t, m)
	versionHosts := versionHostsOf(m)
	host := fmt.Sprintf("%s.%s.svc.cluster.local", service, m.namespace)
	deadline := time.Now().Add(20 * time.Second)
	for {
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
			var cs []*clusterv3.Cluster
			for _, cl := range s.Clusters(p) {
				cl = proto.Clone(cl).(*clusterv3.Cluster)
				cl.Name = asSubset(cl.GetName(), versionHosts)
				cs = append(cs, cl)
			}
			for _, rc := range s.Routes(p) {
				for _, vh := range rc.GetVirtualHosts() {
					mine := &route.VirtualHost{Name: vh.GetName()}
					for _, rt := range vh.GetRoutes() {
						if pod == c.gateway && normaliseMatch(rt.GetMatch(), true) != "segments:/"+service {
							continue
						}
						rt = proto.Clone(rt).(*route.Route)
						if a := rt.GetRoute(); a != nil {
							renameClusters(a, versionHosts)
						}
						mine.Routes = append(mine.Routes, rt)
					}
					switch {
					case pod == c.gateway && len(mine.Routes) > 0:
						r := rulesOf(t, mine, cs, service)
						gateway = &r
					case pod != c.gateway && rc.GetName() == fmt.Sprint(m.port(service)) && slices.Contains(vh.GetDomains(), host):
						r := rulesOf(t, mine, cs, service)
						sidecar = &r
					}
				}
			}
		}
		// Untranslated, a host gets istiod's default route: no timeout.
		if sidecar != nil && gateway != nil && sidecar.Timeout != "0s" {
			return *sidecar, *gateway
		}
		if time.Now().After(deadline) {
			t.Fatalf("istiod gives no translated route to %s: sidecar %v, gateway %v", host, sidecar, gateway)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// renameClusters names a route action's per-version clusters as subsets.
func renameClusters(a *route.RouteAction, versionHosts map[string]string) {
	if w := a.GetWeightedClusters(); w != nil {
		for _, c := range w.GetClusters() {
			c.Name = asSubset(c.GetName(), versionHosts)
		}
		return
	}
	a.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: asSubset(a.GetCluster(), versionHosts)}
}

// `up` runs the mesh file whatever API it is rendered in: what it tells service-c's sidecar and
// its gateway about service-a and service-b is what istiod makes of the Gateway API render
// (per-version clusters named as subsets, as `up` names them by version).
func TestLocalMeshAgreesWithGatewayAPIForm(t *testing.T) {
	m := render(t, gatewayAPITopologies[0])
	up := upRulesFor(t, gatewayAPIMesh)
	a, aGateway := istiodGatewayAPIRules(t, m, "service-a")
	b, _ := istiodGatewayAPIRules(t, m, "service-b")
	if len(a.Split) != 2 || a.Split["v1"] != 90 || a.Timeout != "2s" || a.Matches["x-user-group=beta"] != "v2" {
		t.Errorf("service-a in istiod from the HTTPRoutes: %+v; want the 90/10 canary, the beta match, 2s", a)
	}
	for _, c := range []struct {
		proxy, svc string
		istiod     rules
	}{
		{"service-c-sidecar", "service-a", a}, {"service-c-sidecar", "service-b", b},
		{"ingress-gateway", "service-a", aGateway},
	} {
		got, wantJSON := must(json.Marshal(up[c.proxy][c.svc])), must(json.Marshal(c.istiod))
		if string(got) != string(wantJSON) {
			t.Errorf("%s → %s: up\n %s\nistiod (Gateway API)\n %s", c.proxy, c.svc, got, wantJSON)
		}
	}
}

// The comparison can fail where a render can go wrong: without the DestinationRules of the
// per-version Services, the circuit breaker and outlier detection are not on the clusters the
// HTTPRoutes send service-a's traffic to, and istiod's xDS says so.
func TestGatewayAPIDifferenceIsCaught(t *testing.T) {
	topo := gatewayAPITopologies[0]
	full := render(t, topo)
	var kept []*unstructured.Unstructured
	for _, o := range full.objects {
		if o.GetKind() == "DestinationRule" && strings.HasPrefix(o.GetName(), "service-a-v") {
			continue
		}
		kept = append(kept, o)
	}
	broken, err := parseMesh(unstructuredYAML(kept))
	if err != nil {
		t.Fatal(err)
	}
	istio := render(t, istioTwin(topo))
	services := istio.names()
	want := istiodFlows(t, istio, services)
	var got flows
	deadline := time.Now().Add(20 * time.Second)
	for {
		got = istiodFlows(t, broken, services)
		// Translated: service-c's sidecar splits service-a 90/10 over the per-version hosts.
		if got.byProxy["service-c"]["service-a"].Routes != nil {
			if r := got.byProxy["service-c"]["service-a"].Routes; r[len(r)-1].Clusters["service-a/v1"] == 90 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("istiod never translated the HTTPRoutes")
		}
		time.Sleep(500 * time.Millisecond)
	}
	a, b := want.byProxy["service-c"]["service-a"], got.byProxy["service-c"]["service-a"]
	if !strings.Contains(a.Clusters["service-a/v1"], "breakers[DEFAULT] 1/1/1 outlier 5xx 3") {
		t.Fatalf("the Istio form lost its circuit breaker: %v", a.Clusters)
	}
	if strings.Contains(b.Clusters["service-a/v1"], "outlier") || a.Clusters["service-a/v1"] == b.Clusters["service-a/v1"] {
		t.Errorf("without per-version DestinationRules the comparison still agrees:\n istio %v\n gw    %v", a.Clusters, b.Clusters)
	}
	if string(must(json.Marshal(want.byProxy))) == string(must(json.Marshal(got.byProxy))) {
		t.Error("the flows compare equal")
	}
}
