package istio

// Step 2: every Istio object we render, validated against the pinned release's CRDs by the
// apiextensions code Kubernetes' API server runs: OpenAPI schema, pruning of unknown fields and
// the CRDs' CEL rules (x-kubernetes-validations).

import (
	"fmt"
	"os"
	"os/exec"
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

// istioValidator loads manifests/charts/base/files/crd-all.gen.yaml from where the module cache
// extracted istio.io/istio (at the version go.mod requires). Never `go list -m` or `go mod
// download`: both ask the module proxy for the pseudo-version's .info, which it refuses (403)
// on a machine whose cache never held it.
func istioValidator(t testing.TB) *crd.Validator {
	t.Helper()
	crdOnce.Do(func() {
		var dir string
		dir, crdErr = istioModuleDir()
		if crdErr == nil {
			crdValidator, crdErr = crd.NewValidatorFromFiles(filepath.Join(dir, "manifests/charts/base/files/crd-all.gen.yaml"))
		}
	})
	if crdErr != nil {
		t.Fatal(crdErr)
	}
	return crdValidator
}

// istioModuleDir is $GOMODCACHE/istio.io/istio@<the version go.mod requires>.
func istioModuleDir() (string, error) {
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		return "", err
	}
	version := ""
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "istio.io/istio" {
			version = f[1]
		}
	}
	if version == "" {
		return "", fmt.Errorf("go.mod requires no istio.io/istio")
	}
	cache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(cache)), "istio.io", "istio@"+version), nil
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
