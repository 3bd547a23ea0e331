package istio

// Deliberately broken renders go through the same checks as real ones, and the step that owns
// each mistake must catch it: a missing subset (analyze, and istiod's routes), a principal in
// the wrong format (istiod's RBAC), a bad sha256 (the CRDs' rules and istioctl validate).

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// broken copies the three-service render and changes the first object of kind with edit.
func broken(t *testing.T, kind string, edit func(o *unstructured.Unstructured) bool) (*mesh, []*unstructured.Unstructured) {
	t.Helper()
	m := render(t, topologies[1])
	var out []*unstructured.Unstructured
	edited := false
	for _, o := range m.objects {
		c := o.DeepCopy()
		if !edited && c.GetKind() == kind {
			edited = edit(c)
		}
		out = append(out, c)
	}
	if !edited {
		t.Fatalf("no %s to break", kind)
	}
	return m, out
}

func istioOnly(objects []*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objects {
		if strings.Contains(o.GetAPIVersion(), "istio.io/") {
			out = append(out, o)
		}
	}
	return out
}

func TestBrokenSubsetIsCaught(t *testing.T) {
	m, objects := broken(t, "VirtualService", func(o *unstructured.Unstructured) bool {
		gateways, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "gateways")
		if len(gateways) != 1 || gateways[0] != "mesh" {
			return false
		}
		http, _, _ := unstructured.NestedSlice(o.Object, "spec", "http")
		dest := http[0].(map[string]any)["route"].([]any)[0].(map[string]any)["destination"].(map[string]any)
		dest["subset"] = "v2"
		return unstructured.SetNestedSlice(o.Object, http, "spec", "http") == nil
	})
	var found bool
	for _, msg := range analyze(t, m, unstructuredYAML(objects)) {
		if msg.Code == "IST0101" && strings.Contains(msg.Message, "v2") {
			found = true
		}
	}
	if !found {
		t.Error("istioctl analyze did not report the missing subset v2 (IST0101)")
	}
	if problems := checkTranslation(t, m, translate(t, m, istioOnly(objects))); !containsAny(problems, "routed to outbound|") {
		t.Errorf("istiod's routes did not show the missing subset: %v", problems)
	}
}

func TestBrokenPrincipalIsCaught(t *testing.T) {
	m, objects := broken(t, "AuthorizationPolicy", func(o *unstructured.Unstructured) bool {
		rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "rules")
		source := rules[0].(map[string]any)["from"].([]any)[0].(map[string]any)["source"].(map[string]any)
		principals := source["principals"].([]any)
		// Istio principals have no scheme: istiod prefixes spiffe:// itself.
		principals[0] = "spiffe://" + principals[0].(string)
		return unstructured.SetNestedSlice(o.Object, rules, "spec", "rules") == nil
	})
	problems := checkTranslation(t, m, translate(t, m, istioOnly(objects)))
	if !containsAny(problems, "inbound RBAC admits") {
		t.Errorf("istiod's RBAC did not show the malformed principal: %v", problems)
	}
}

func TestBrokenSha256IsCaught(t *testing.T) {
	_, objects := broken(t, "WasmPlugin", func(o *unstructured.Unstructured) bool {
		return unstructured.SetNestedField(o.Object, strings.Repeat("z", 64), "spec", "sha256") == nil
	})
	if errs := validateCRDs(t, istioOnly(objects)); len(errs) == 0 || !strings.Contains(errs[0].Error(), "sha256") {
		t.Errorf("the WasmPlugin CRD accepted a bad sha256: %v", errs)
	}
	if out, errOut, err := validate(t, unstructuredYAML(objects)); err == nil || !strings.Contains(string(out)+string(errOut), "sha256") {
		t.Errorf("istioctl validate accepted a bad sha256: %v\n%s%s", err, out, errOut)
	}
}

func containsAny(problems []string, part string) bool {
	for _, p := range problems {
		if strings.Contains(p, part) {
			return true
		}
	}
	return false
}

// A WasmPlugin limited to SERVER mode reaches only inbound chains: the checks follow the
// rendered modes (for a render with CLIENT and SERVER plugins) and notice when istiod's output
// does not match what a render asks.
func TestPluginModesFollowIstiod(t *testing.T) {
	// The outbound plugin moved to the inbound side, told so: a render of two inbound plugins.
	m, objects := broken(t, "WasmPlugin", func(o *unstructured.Unstructured) bool {
		return unstructured.SetNestedSlice(o.Object, []any{map[string]any{"mode": "SERVER"}}, "spec", "match") == nil &&
			unstructured.SetNestedField(o.Object, "inbound", "spec", "pluginConfig", "direction") == nil
	})
	serverOnly := &mesh{objects: objects, namespace: m.namespace, deployments: m.deployments, services: m.services}
	got := translate(t, serverOnly, istioOnly(objects))
	if problems := checkTranslation(t, serverOnly, got); len(problems) > 0 {
		t.Errorf("a SERVER-only plugin, judged by its own render: %v", problems)
	}
	if problems := checkTranslation(t, m, got); !containsAny(problems, "present=false, want true") {
		t.Errorf("outbound chains without the plugin went unnoticed: %v", problems)
	}
}

// A plugin told a direction other than the side its match mode puts it on is caught: the
// filter would tag and count that side's calls as the other side's.
func TestPluginDirectionAgainstItsSideIsCaught(t *testing.T) {
	m, objects := broken(t, "WasmPlugin", func(o *unstructured.Unstructured) bool {
		return unstructured.SetNestedField(o.Object, "inbound", "spec", "pluginConfig", "direction") == nil
	})
	judged := &mesh{objects: objects, namespace: m.namespace, deployments: m.deployments, services: m.services}
	got := translate(t, judged, istioOnly(objects))
	if problems := checkTranslation(t, judged, got); !containsAny(problems, `side told direction "inbound"`) {
		t.Errorf("an outbound plugin told inbound went unnoticed: %v", problems)
	}
}
