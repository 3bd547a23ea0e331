package istio

// Step 5: the local mesh (`deployer up`, real Envoy with upstream extensions only) is held to
// istiod's answers for the same mesh: which principals each inbound admits, routes with their
// prefix rewrite, timeouts and retries, whether mTLS is required, where the filter sits and its
// failure policy, and the caller name the callee's filter reports for gateway traffic (asked
// of the running mesh with a real request).
//
// What upstream Envoy cannot reproduce, and so is not compared: Istio's own HTTP filters
// (istio.metadata_exchange, istio.alpn, istio.stats) and its SDS-delivered certificates; the
// local proxies read PEM files instead, and the app port is reached without iptables.

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// upConfig is the subset of an Envoy bootstrap (as `up` writes it) that the comparison reads.
type upConfig struct {
	StaticResources struct {
		Listeners []upListener `json:"listeners"`
		Clusters  []struct {
			Name            string          `json:"name"`
			TransportSocket json.RawMessage `json:"transport_socket"`
		} `json:"clusters"`
	} `json:"static_resources"`
}

type upListener struct {
	Name    string `json:"name"`
	Address struct {
		SocketAddress struct {
			PortValue uint32 `json:"port_value"`
		} `json:"socket_address"`
	} `json:"address"`
	FilterChains []struct {
		Filters []struct {
			TypedConfig struct {
				HTTPFilters []struct {
					Name        string         `json:"name"`
					TypedConfig map[string]any `json:"typed_config"`
				} `json:"http_filters"`
				RouteConfig struct {
					VirtualHosts []struct {
						Domains []string `json:"domains"`
						Routes  []struct {
							Match map[string]string `json:"match"`
							Route struct {
								Cluster       string `json:"cluster"`
								PrefixRewrite string `json:"prefix_rewrite"`
								Timeout       string `json:"timeout"`
								RetryPolicy   *struct {
									RetryOn       string `json:"retry_on"`
									NumRetries    uint32 `json:"num_retries"`
									PerTryTimeout string `json:"per_try_timeout"`
								} `json:"retry_policy"`
							} `json:"route"`
						} `json:"routes"`
					} `json:"virtual_hosts"`
				} `json:"route_config"`
			} `json:"typed_config"`
		} `json:"filters"`
		TransportSocket *struct {
			TypedConfig struct {
				RequireClientCertificate bool `json:"require_client_certificate"`
				CommonTLSContext         struct {
					TLSCertificates []struct {
						CertificateChain struct {
							Filename string `json:"filename"`
						} `json:"certificate_chain"`
					} `json:"tls_certificates"`
					ValidationContext struct {
						MatchTypedSubjectAltNames []struct {
							Matcher map[string]string `json:"matcher"`
						} `json:"match_typed_subject_alt_names"`
					} `json:"validation_context"`
				} `json:"common_tls_context"`
			} `json:"typed_config"`
		} `json:"transport_socket"`
	} `json:"filter_chains"`
}

// localMesh starts `deployer up --detach` for the three-service topology on free ports and
// stops it when the test ends.
type localMesh struct {
	state   string
	gateway int
	ports   map[string]int
}

func startLocalMesh(t *testing.T, m *mesh, extra ...string) *localMesh {
	t.Helper()
	root := repoRoot(t)
	wasm := tool(t, "MESHTALLY_WASM", filepath.Join(root, "target/wasm32-wasip1/release/meshtally_filter.wasm"), "make wasm")
	service := tool(t, "MESHTALLY_SERVICE", filepath.Join(filepath.Dir(deployerBin(t)), "demo-service"),
		"cargo build -p demo-service")
	envoy := tool(t, "ENVOY_BIN", filepath.Join(root, ".venv/bin/envoy-bin"), "make setup")
	base := freeRun(t, len(m.names()))
	l := &localMesh{state: filepath.Join(t.TempDir(), "state"), gateway: freeRun(t, 1), ports: map[string]int{}}
	for i, name := range m.names() {
		l.ports[name] = base + i
	}
	args := []string{"up", "--detach", "--services", fmt.Sprint(len(m.names())), "--namespace", m.namespace,
		"--base-port", fmt.Sprint(base), "--gateway-port", fmt.Sprint(l.gateway), "--state-dir", l.state,
		"--wasm", wasm, "--service-bin", service, "--envoy", envoy}
	args = append(args, extra...)
	t.Cleanup(func() {
		if out, errOut, err := runErr(deployerBin(t), "down", "--state-dir", l.state); err != nil {
			t.Errorf("deployer down: %v\n%s%s", err, out, errOut)
		}
	})
	run(t, deployerBin(t), args...)
	return l
}

// freeRun finds n consecutive free loopback ports above the range the Rust e2e tests use.
func freeRun(t *testing.T, n int) int {
	t.Helper()
	for range 200 {
		base := 40000 + rand.IntN(20000)
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free run of loopback ports")
	return 0
}

// config reads a local proxy's whole config: its bootstrap, with the routes, clusters and filter
// it takes from xDS files (`up` delivers them as file-based RDS, CDS and ECDS) put in place.
func (l *localMesh) config(t *testing.T, proxy string) upConfig {
	t.Helper()
	var boot map[string]any
	readJSON(t, filepath.Join(l.state, "envoy", proxy+".json"), &boot)
	statics, _ := boot["static_resources"].(map[string]any)
	if dyn, ok := boot["dynamic_resources"].(map[string]any); ok {
		statics["clusters"] = xdsResources(t, dyn["cds_config"])
	}
	listeners, _ := statics["listeners"].([]any)
	for _, ln := range listeners {
		chains, _ := ln.(map[string]any)["filter_chains"].([]any)
		for _, fc := range chains {
			filters, _ := fc.(map[string]any)["filters"].([]any)
			for _, f := range filters {
				hcm, _ := f.(map[string]any)["typed_config"].(map[string]any)
				if rds, ok := hcm["rds"].(map[string]any); ok {
					hcm["route_config"] = xdsResources(t, rds["config_source"])[0]
				}
				httpFilters, _ := hcm["http_filters"].([]any)
				for _, hf := range httpFilters {
					hfm := hf.(map[string]any)
					if cd, ok := hfm["config_discovery"].(map[string]any); ok {
						hfm["typed_config"] = xdsResources(t, cd["config_source"])[0].(map[string]any)["typed_config"]
					}
				}
			}
		}
	}
	raw, err := json.Marshal(boot)
	if err != nil {
		t.Fatal(err)
	}
	var c upConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("%s: %v", proxy, err)
	}
	return c
}

// xdsResources reads the resources of the file a path_config_source names.
func xdsResources(t *testing.T, source any) []any {
	t.Helper()
	path, _ := source.(map[string]any)["path_config_source"].(map[string]any)["path"].(string)
	var response struct {
		Resources []any `json:"resources"`
	}
	readJSON(t, path, &response)
	if len(response.Resources) == 0 {
		t.Fatalf("%s: no resources", path)
	}
	return response.Resources
}

func readJSON(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// summarise reads a local proxy's bootstrap into the shape istiod's output was reduced to.
func (l *localMesh) summarise(t *testing.T, proxy string) proxySummary {
	t.Helper()
	c := l.config(t, proxy)
	var s proxySummary
	for _, ln := range c.StaticResources.Listeners {
		switch ln.Name {
		case "inbound":
			in := inboundSummary{Port: ln.Address.SocketAddress.PortValue, MTLS: "STRICT"}
			for _, fc := range ln.FilterChains {
				ts := fc.TransportSocket
				if ts == nil || !ts.TypedConfig.RequireClientCertificate {
					in.MTLS = "PERMISSIVE"
					continue
				}
				s.Identity = certURI(t, ts.TypedConfig.CommonTLSContext.TLSCertificates[0].CertificateChain.Filename)
				// Principals are admitted by an RBAC filter (as istiod does) or, failing that,
				// by the certificate SANs the handshake accepts.
				for _, f := range fc.Filters {
					in.HTTPFilters = upFilterNames(f.TypedConfig.HTTPFilters)
					for _, hf := range f.TypedConfig.HTTPFilters {
						if hf.Name == "envoy.filters.http.rbac" {
							in.Principals = append(in.Principals, jsonPrincipals(hf.TypedConfig)...)
						}
						if strings.HasPrefix(hf.Name, "meshtally") {
							s.Extensions = appendExtension(s.Extensions, upExtension(hf.Name, hf.TypedConfig))
						}
					}
				}
				for _, san := range ts.TypedConfig.CommonTLSContext.ValidationContext.MatchTypedSubjectAltNames {
					in.Principals = append(in.Principals, "exact:"+san.Matcher["exact"])
				}
			}
			sort.Strings(in.Principals)
			s.Inbound = append(s.Inbound, in)
		case "outbound":
			for _, f := range ln.FilterChains[0].Filters {
				for _, vh := range f.TypedConfig.RouteConfig.VirtualHosts {
					r := vh.Routes[0]
					out := outboundSummary{Host: vh.Domains[0], Cluster: r.Route.Cluster, Timeout: upDuration(t, r.Route.Timeout),
						HTTPFilters: upFilterNames(f.TypedConfig.HTTPFilters)}
					if rp := r.Route.RetryPolicy; rp != nil {
						out.Retries = &retries{Attempts: rp.NumRetries, PerTryTimeout: upDuration(t, rp.PerTryTimeout), RetryOn: rp.RetryOn}
					}
					s.Outbound = append(s.Outbound, out)
				}
				for _, hf := range f.TypedConfig.HTTPFilters {
					if strings.HasPrefix(hf.Name, "meshtally") {
						s.Extensions = appendExtension(s.Extensions, upExtension(hf.Name, hf.TypedConfig))
					}
				}
			}
		case "ingress":
			for _, f := range ln.FilterChains[0].Filters {
				for _, vh := range f.TypedConfig.RouteConfig.VirtualHosts {
					for _, r := range vh.Routes {
						var match string
						for k, v := range r.Match {
							match = k + ":" + v
						}
						s.Gateway = append(s.Gateway, gatewayRoute{Match: match, PrefixRewrite: r.Route.PrefixRewrite,
							Cluster: r.Route.Cluster, Timeout: upDuration(t, r.Route.Timeout)})
					}
				}
			}
		}
	}
	return s
}

func upFilterNames(filters []struct {
	Name        string         `json:"name"`
	TypedConfig map[string]any `json:"typed_config"`
},
) []string {
	var out []string
	for _, f := range filters {
		if strings.HasPrefix(f.Name, "meshtally") {
			out = append(out, "wasm:"+f.Name)
		} else {
			out = append(out, f.Name)
		}
	}
	return out
}

// jsonPrincipals collects every authenticated principal_name matcher of an RBAC filter config.
func jsonPrincipals(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		if pn, ok := x["principal_name"].(map[string]any); ok {
			for k, val := range pn {
				out = append(out, fmt.Sprintf("%s:%v", k, val))
			}
		}
		for _, child := range x {
			out = append(out, jsonPrincipals(child)...)
		}
	case []any:
		for _, child := range x {
			out = append(out, jsonPrincipals(child)...)
		}
	}
	return out
}

func upExtension(name string, cfg map[string]any) extension {
	config, _ := cfg["config"].(map[string]any)
	configuration, _ := config["configuration"].(map[string]any)
	value, _ := configuration["value"].(string)
	return extension{Name: name, FailOpen: config["failure_policy"] == "FAIL_OPEN", Config: value}
}

// appendExtension adds an extension once: a side's chains (mTLS and plain) share one.
func appendExtension(exts []extension, e extension) []extension {
	for _, have := range exts {
		if have.Name == e.Name {
			return exts
		}
	}
	return append(exts, e)
}

// filterSide is what a side's meshtally filter is told: its direction and its loop guard
// (the filter's default when the config leaves it out). `up` also passes each sidecar its
// version, the local stand-in for the LABELS.version node metadata istiod's proxies have,
// so the version is not compared.
type filterSide struct {
	Direction string
	MaxHops   float64
}

func sideOf(t testing.TB, e extension) filterSide {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal([]byte(e.Config), &c); err != nil {
		t.Fatalf("%s: plugin config %q: %v", e.Name, e.Config, err)
	}
	side := filterSide{MaxHops: 10}
	side.Direction, _ = c["direction"].(string)
	if n, ok := c["max_hops"].(float64); ok {
		side.MaxHops = n
	}
	return side
}

// extensionIn finds the extension a chain's filter list names ("ecds:<name>" from istiod,
// "wasm:<name>" from up).
func extensionIn(exts []extension, filters []string) (extension, bool) {
	for _, f := range filters {
		for _, e := range exts {
			if f == "ecds:"+e.Name || f == "wasm:"+e.Name {
				return e, true
			}
		}
	}
	return extension{}, false
}

func upDuration(t *testing.T, s string) string {
	if s == "" {
		return "unset"
	}
	return durationString(t, s)
}

// certURI is the SPIFFE URI SAN of a PEM certificate: the identity a proxy presents.
func certURI(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range cert.URIs {
		return u.String()
	}
	return ""
}

// gatewayCaller asks the running local mesh which caller the callee's filter reports for a
// request through the gateway.
func (l *localMesh) gatewayCaller(t *testing.T, svc string) (string, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/%s/info", l.gateway, svc))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var seen struct {
		Headers map[string]string `json:"request_headers"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &seen) != nil {
		t.Fatalf("GET /%s/info through the gateway: %d %s", svc, resp.StatusCode, body)
	}
	return seen.Headers["x-mesh-source"], seen.Headers["x-mesh-peer-verified"]
}

// callerFromIdentity applies the filter's rule (meshtally-core's spiffe_identity): a verified
// caller is named by its certificate's service account.
func callerFromIdentity(spiffe string) string {
	parts := strings.Split(strings.TrimPrefix(spiffe, "spiffe://"), "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return "unknown"
	}
	return parts[4]
}

func TestLocalMeshAgreesWithIstiod(t *testing.T) {
	m := render(t, topologies[1])
	istiod := translate(t, m, m.istioObjects())
	l := startLocalMesh(t, m)
	gwUp := l.summarise(t, "ingress-gateway")
	gwIstiod := istiod["istio-ingressgateway"]

	// Whether the gateway runs the filter: istiod gives it no extension config.
	if len(gwUp.Extensions) != len(gwIstiod.Extensions) {
		t.Errorf("gateway filters: up runs %d meshtally filters, istiod %d", len(gwUp.Extensions), len(gwIstiod.Extensions))
	}
	for _, svc := range m.names() {
		want, got := istiod[svc], l.summarise(t, svc+"-sidecar")
		if got.Identity != want.Identity {
			t.Errorf("%s: up's sidecar is %s, istiod's %s", svc, got.Identity, want.Identity)
		}
		// Inbound: mTLS required, exactly the same principals, the filter after RBAC.
		if got.Inbound[0].MTLS != want.Inbound[0].MTLS {
			t.Errorf("%s inbound: up %s, istiod %s", svc, got.Inbound[0].MTLS, want.Inbound[0].MTLS)
		}
		if !reflect.DeepEqual(got.Inbound[0].Principals, want.Inbound[0].Principals) {
			t.Errorf("%s inbound principals: up %v, istiod %v", svc, got.Inbound[0].Principals, want.Inbound[0].Principals)
		}
		for _, p := range filterPlacement(svc+" inbound (up)", got.Inbound[0].HTTPFilters, true) {
			t.Error(p)
		}
		// Outbound: timeout and retries per peer; the filter before the router.
		for _, wo := range want.Outbound {
			peer := strings.Split(wo.Host, ".")[0]
			var found bool
			for _, o := range got.Outbound {
				if o.Host != peer {
					continue
				}
				found = true
				if o.Timeout != wo.Timeout || !reflect.DeepEqual(o.Retries, wo.Retries) {
					t.Errorf("%s → %s: up timeout %s retries %+v, istiod %s %+v", svc, peer, o.Timeout, o.Retries, wo.Timeout, wo.Retries)
				}
				for _, p := range filterPlacement(svc+" → "+peer+" (up)", o.HTTPFilters, false) {
					t.Error(p)
				}
			}
			if !found {
				t.Errorf("%s: up has no outbound route to %s", svc, peer)
			}
		}
		// The filter's failure policy and config.
		if len(got.Extensions) != len(want.Extensions) {
			t.Errorf("%s: up runs %d meshtally filters, istiod delivers %d", svc, len(got.Extensions), len(want.Extensions))
		}
		// Each side's filter is told the same side, by up as by istiod's rendered WasmPlugin.
		sides := []struct {
			name      string
			up, istio []string
		}{{"inbound", got.Inbound[0].HTTPFilters, want.Inbound[0].HTTPFilters}}
		if len(got.Outbound) > 0 && len(want.Outbound) > 0 {
			sides = append(sides, struct {
				name      string
				up, istio []string
			}{"outbound", got.Outbound[0].HTTPFilters, want.Outbound[0].HTTPFilters})
		}
		for _, side := range sides {
			u, okU := extensionIn(got.Extensions, side.up)
			i, okI := extensionIn(want.Extensions, side.istio)
			if !okU || !okI {
				t.Errorf("%s %s: meshtally filter in up %v, in istiod %v", svc, side.name, okU, okI)
				continue
			}
			su, si := sideOf(t, u), sideOf(t, i)
			if su != si || su.Direction != side.name {
				t.Errorf("%s %s: up's filter is told %+v, istiod's %+v", svc, side.name, su, si)
			}
		}
		for _, ext := range got.Extensions {
			for _, w := range want.Extensions {
				if ext.FailOpen != w.FailOpen {
					t.Errorf("%s: up's filter fail-open=%v, istiod's %s %v", svc, ext.FailOpen, w.Name, w.FailOpen)
				}
			}
		}
		// Gateway routes: match, prefix rewrite and timeout (the local gateway has no subsets).
		for _, match := range []string{"prefix:/" + svc + "/", "path:/" + svc} {
			var u, i *gatewayRoute
			for k := range gwUp.Gateway {
				if gwUp.Gateway[k].Match == match {
					u = &gwUp.Gateway[k]
				}
			}
			for k := range gwIstiod.Gateway {
				if gwIstiod.Gateway[k].Match == match {
					i = &gwIstiod.Gateway[k]
				}
			}
			if u == nil || i == nil || u.PrefixRewrite != i.PrefixRewrite || u.Timeout != i.Timeout {
				t.Errorf("gateway route %s: up %+v, istiod %+v", match, u, i)
			}
		}
		// The caller the callee reports for gateway traffic: istiod's gateway identity, by the
		// filter's rule, against what the running local mesh's callee actually reported.
		wantCaller := callerFromIdentity(gwIstiod.Identity)
		caller, verified := l.gatewayCaller(t, svc)
		if caller != wantCaller || verified != "true" {
			t.Errorf("%s: for gateway traffic the local callee reports %q (verified %s); on Istio it is %q",
				svc, caller, verified, wantCaller)
		}
	}
}
