package istio

// The parts of istiod's xDS output that our render decides, reduced to plain values: these are
// what the assertions read, what the golden files keep, and what `deployer up` is compared to.

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	wasmhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// proxySummary is one proxy's configuration as far as meshtally's render decides it.
type proxySummary struct {
	Identity   string            `json:"identity"`
	Inbound    []inboundSummary  `json:"inbound,omitempty"`
	Outbound   []outboundSummary `json:"outbound,omitempty"`
	Gateway    []gatewayRoute    `json:"gateway_routes,omitempty"`
	Extensions []extension       `json:"extensions,omitempty"`
}

type inboundSummary struct {
	Port uint32 `json:"port"`
	// STRICT when every filter chain for the port requires a client certificate.
	MTLS        string   `json:"mtls"`
	Principals  []string `json:"principals"`
	HTTPFilters []string `json:"http_filters"`
}

type outboundSummary struct {
	Host        string       `json:"host"`
	Port        uint32       `json:"port"`
	Cluster     string       `json:"cluster"`
	TLS         string       `json:"tls"`
	SANs        []string     `json:"sans"`
	Timeout     string       `json:"timeout"`
	Retries     *retries     `json:"retries,omitempty"`
	HTTPFilters []string     `json:"http_filters"`
	Routes      []routeMatch `json:"routes,omitempty"`
}

type retries struct {
	Attempts      uint32 `json:"attempts"`
	PerTryTimeout string `json:"per_try_timeout"`
	RetryOn       string `json:"retry_on"`
}

type routeMatch struct {
	Match         string `json:"match"`
	PrefixRewrite string `json:"prefix_rewrite,omitempty"`
}

type gatewayRoute struct {
	Match         string `json:"match"`
	PrefixRewrite string `json:"prefix_rewrite"`
	Cluster       string `json:"cluster"`
	Timeout       string `json:"timeout"`
}

type extension struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	SHA256   string `json:"sha256,omitempty"`
	FailOpen bool   `json:"fail_open"`
	Config   string `json:"config"`
}

// inboundChains summarises the inbound listener's chains for one port.
func inboundChains(t testing.TB, ls []*listener.Listener, port uint32) inboundSummary {
	t.Helper()
	out := inboundSummary{Port: port, MTLS: "STRICT"}
	var seen bool
	for _, l := range ls {
		if l.GetName() != "virtualInbound" {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			if fc.GetFilterChainMatch().GetDestinationPort().GetValue() != port {
				continue
			}
			seen = true
			if !requiresClientCert(t, fc.GetTransportSocket()) {
				out.MTLS = "PERMISSIVE"
			}
			if m := httpManager(t, fc); m != nil {
				out.HTTPFilters = filterNames(m)
				out.Principals = rbacPrincipals(t, m)
			}
		}
	}
	if !seen {
		t.Fatalf("no inbound filter chain for port %d", port)
	}
	return out
}

func requiresClientCert(t testing.TB, ts *core.TransportSocket) bool {
	if ts == nil {
		return false
	}
	ctx := &tlsv3.DownstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
		t.Fatalf("inbound transport socket: %v", err)
	}
	return ctx.GetRequireClientCertificate().GetValue()
}

// httpManager is the chain's HTTP connection manager, or nil for a TCP chain.
func httpManager(t testing.TB, fc *listener.FilterChain) *hcm.HttpConnectionManager {
	for _, f := range fc.GetFilters() {
		if f.GetName() == "envoy.filters.network.http_connection_manager" {
			m := &hcm.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	return nil
}

// filterNames lists the HTTP filters in order; an ECDS filter shows as "ecds:<resource>".
func filterNames(m *hcm.HttpConnectionManager) []string {
	var out []string
	for _, f := range m.GetHttpFilters() {
		if f.GetConfigDiscovery() != nil {
			out = append(out, "ecds:"+f.GetName())
		} else {
			out = append(out, f.GetName())
		}
	}
	return out
}

// rbacPrincipals lists what the ALLOW RBAC filter admits, as "exact:<uri>" and the like.
func rbacPrincipals(t testing.TB, m *hcm.HttpConnectionManager) []string {
	var out []string
	for _, f := range m.GetHttpFilters() {
		if f.GetName() != "envoy.filters.http.rbac" {
			continue
		}
		r := &rbachttp.RBAC{}
		if err := f.GetTypedConfig().UnmarshalTo(r); err != nil {
			t.Fatal(err)
		}
		if r.GetRules().GetAction() != rbacv3.RBAC_ALLOW {
			continue
		}
		for _, p := range r.GetRules().GetPolicies() {
			for _, pr := range p.GetPrincipals() {
				out = append(out, principalMatchers(pr)...)
			}
		}
	}
	sort.Strings(out)
	return out
}

func principalMatchers(p *rbacv3.Principal) []string {
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Authenticated_:
		return []string{stringMatch(id.Authenticated.GetPrincipalName())}
	case *rbacv3.Principal_AndIds:
		var out []string
		for _, q := range id.AndIds.GetIds() {
			out = append(out, principalMatchers(q)...)
		}
		return out
	case *rbacv3.Principal_OrIds:
		var out []string
		for _, q := range id.OrIds.GetIds() {
			out = append(out, principalMatchers(q)...)
		}
		return out
	case *rbacv3.Principal_Any:
		return []string{"any"}
	default:
		return []string{fmt.Sprintf("other:%T", id)}
	}
}

func stringMatch(m *matcher.StringMatcher) string {
	switch p := m.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		return "exact:" + p.Exact
	case *matcher.StringMatcher_Prefix:
		return "prefix:" + p.Prefix
	case *matcher.StringMatcher_Suffix:
		return "suffix:" + p.Suffix
	case *matcher.StringMatcher_SafeRegex:
		return "regex:" + p.SafeRegex.GetRegex()
	default:
		return fmt.Sprintf("other:%v", m)
	}
}

// outboundTo summarises how a sidecar reaches host:port: listener filters, route, cluster TLS.
func outboundTo(t testing.TB, ls []*listener.Listener, rs []*route.RouteConfiguration, cs []*clusterv3.Cluster,
	host string, port uint32,
) outboundSummary {
	t.Helper()
	out := outboundSummary{Host: host, Port: port}
	for _, l := range ls {
		if l.GetName() != fmt.Sprintf("0.0.0.0_%d", port) {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			if m := httpManager(t, fc); m != nil && out.HTTPFilters == nil {
				out.HTTPFilters = filterNames(m)
			}
		}
	}
	r := findRoute(rs, fmt.Sprint(port), host)
	if r == nil {
		t.Fatalf("no outbound route for %s:%d", host, port)
	}
	out.Routes = []routeMatch{{Match: matchString(r.GetMatch()), PrefixRewrite: r.GetRoute().GetPrefixRewrite()}}
	out.Cluster = r.GetRoute().GetCluster()
	out.Timeout = r.GetRoute().GetTimeout().AsDuration().String()
	if rp := r.GetRoute().GetRetryPolicy(); rp != nil {
		out.Retries = &retries{
			Attempts:      rp.GetNumRetries().GetValue(),
			PerTryTimeout: rp.GetPerTryTimeout().AsDuration().String(),
			RetryOn:       rp.GetRetryOn(),
		}
	}
	for _, c := range cs {
		if c.GetName() == out.Cluster {
			out.TLS, out.SANs = upstreamTLS(t, c)
		}
	}
	return out
}

// findRoute is the first route of the virtual host serving host in route config name.
func findRoute(rs []*route.RouteConfiguration, name, host string) *route.Route {
	for _, rc := range rs {
		if rc.GetName() != name {
			continue
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, d := range vh.GetDomains() {
				if d == host && len(vh.GetRoutes()) > 0 {
					return vh.GetRoutes()[0]
				}
			}
		}
	}
	return nil
}

func matchString(m *route.RouteMatch) string {
	switch p := m.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		return "prefix:" + p.Prefix
	case *route.RouteMatch_Path:
		return "path:" + p.Path
	case *route.RouteMatch_PathSeparatedPrefix:
		return "path_separated_prefix:" + p.PathSeparatedPrefix
	case *route.RouteMatch_SafeRegex:
		return "regex:" + p.SafeRegex.GetRegex()
	default:
		return fmt.Sprintf("other:%v", m)
	}
}

// upstreamTLS says whether a cluster originates Istio mutual TLS (the workload certificate and
// root CA from the agent's SDS, "default" and "ROOTCA"), and which server SANs it accepts.
func upstreamTLS(t testing.TB, c *clusterv3.Cluster) (string, []string) {
	ts := c.GetTransportSocket()
	for _, m := range c.GetTransportSocketMatches() {
		if m.GetName() == "tlsMode-istio" {
			ts = m.GetTransportSocket()
		}
	}
	if ts == nil {
		return "NONE", nil
	}
	ctx := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
		t.Fatal(err)
	}
	common := ctx.GetCommonTlsContext()
	var certs []string
	for _, s := range common.GetTlsCertificateSdsSecretConfigs() {
		certs = append(certs, s.GetName())
	}
	combined := common.GetCombinedValidationContext()
	var sans []string
	for _, m := range combined.GetDefaultValidationContext().GetMatchSubjectAltNames() {
		sans = append(sans, stringMatch(m))
	}
	for _, m := range combined.GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
		sans = append(sans, stringMatch(m.GetMatcher()))
	}
	sort.Strings(sans)
	mode := "SIMPLE"
	if strings.Join(certs, ",") == "default" && combined.GetValidationContextSdsSecretConfig().GetName() == "ROOTCA" {
		mode = "ISTIO_MUTUAL"
	}
	return mode, sans
}

// gatewayRoutes lists every route a gateway listener's route config holds.
func gatewayRoutes(rs []*route.RouteConfiguration) []gatewayRoute {
	var out []gatewayRoute
	for _, rc := range rs {
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				out = append(out, gatewayRoute{
					Match:         matchString(r.GetMatch()),
					PrefixRewrite: r.GetRoute().GetPrefixRewrite(),
					Cluster:       r.GetRoute().GetCluster(),
					Timeout:       r.GetRoute().GetTimeout().AsDuration().String(),
				})
			}
		}
	}
	return out
}

// wasmExtension reads an ECDS resource holding a Wasm HTTP filter.
func wasmExtension(t testing.TB, name string, cfg *anypb.Any) extension {
	t.Helper()
	w := &wasmhttp.Wasm{}
	if err := cfg.UnmarshalTo(w); err != nil {
		t.Fatalf("extension config %s is no Wasm filter: %v", name, err)
	}
	pc := w.GetConfig()
	ext := extension{Name: name, FailOpen: pc.GetFailOpen() || pc.GetFailurePolicy() == wasmv3.FailurePolicy_FAIL_OPEN}
	code := pc.GetVmConfig().GetCode()
	if remote := code.GetRemote(); remote != nil {
		ext.URL = remote.GetHttpUri().GetUri()
		ext.SHA256 = remote.GetSha256()
	} else {
		ext.URL = "file://" + code.GetLocal().GetFilename()
	}
	sv := &wrapperspb.StringValue{}
	if pc.GetConfiguration() != nil && pc.GetConfiguration().UnmarshalTo(sv) == nil {
		ext.Config = sv.GetValue()
	}
	return ext
}
