package istio

// Step 2: every Istio object we render, validated against the pinned release's CRDs by the
// apiextensions code Kubernetes' API server runs: OpenAPI schema, pruning of unknown fields and
// the CRDs' CEL rules (x-kubernetes-validations).

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"istio.io/istio/pkg/config/crd"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var (
	crdOnce      sync.Once
	crdValidator *crd.Validator
	crdErr       error
)

// istioValidator loads manifests/charts/base/files/crd-all.gen.yaml from the module cache.
func istioValidator(t testing.TB) *crd.Validator {
	t.Helper()
	crdOnce.Do(func() {
		dir := strings.TrimSpace(string(run(t, "go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio")))
		crdValidator, crdErr = crd.NewValidatorFromFiles(filepath.Join(dir, "manifests/charts/base/files/crd-all.gen.yaml"))
	})
	if crdErr != nil {
		t.Fatal(crdErr)
	}
	return crdValidator
}

// validateCRDs returns one error per object that fails; an Istio kind without a CRD fails too.
func validateCRDs(t testing.TB, objects []*unstructured.Unstructured) []error {
	v := istioValidator(t)
	var errs []error
	for _, o := range objects {
		if err := v.ValidateCustomResource(o.DeepCopy()); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func TestIstioCRDsWithCEL(t *testing.T) {
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			objects := render(t, topo).istioObjects()
			// Gateway, VirtualServices, DestinationRules, PeerAuthentication, AuthorizationPolicies
			// and the WasmPlugin: at least one of each per service plus the shared ones.
			if len(objects) < 5 {
				t.Fatalf("only %d Istio objects rendered", len(objects))
			}
			for _, err := range validateCRDs(t, objects) {
				t.Error(err)
			}
			t.Logf("%d Istio objects valid against the CRDs", len(objects))
		})
	}
}
