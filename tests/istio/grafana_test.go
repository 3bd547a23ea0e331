package istio

// The rendered Grafana dashboard, held to Grafana's own schema: the Go foundation SDK's strict
// unmarshal (unknown or mistyped fields, missing required ones) and its Validate(). No Grafana
// server runs here; this is the check Grafana's schema makes of a dashboard JSON.

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// failure is err unless it is the SDK's empty error list, which its generated code returns
// (as a non-nil error with no message) when nothing failed.
func failure(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

func TestGrafanaDashboardPassesGrafanasSchema(t *testing.T) {
	dir := t.TempDir()
	module := filepath.Join(dir, "meshtally_filter.wasm")
	if err := os.WriteFile(module, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "render")
	run(t, deployerBin(t), "render", "--services", "3", "--wasm-file", module, "--output", out)
	raw, err := os.ReadFile(filepath.Join(out, "monitoring/grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Panels of every type the SDK knows (timeseries, stat, …) unmarshal into their own types.
	plugins.RegisterDefaultPlugins()
	var d dashboard.Dashboard
	if err := failure(d.UnmarshalJSONStrict(raw)); err != nil {
		t.Fatalf("strict unmarshal: %v", err)
	}
	if err := failure(d.Validate()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	// The strict unmarshal can drop a panel it cannot place without saying so: count them.
	var plain struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &plain); err != nil {
		t.Fatal(err)
	}
	if len(d.Panels) != len(plain.Panels) || len(d.Panels) == 0 {
		t.Fatalf("the SDK read %d panels of the %d in the file", len(d.Panels), len(plain.Panels))
	}
	t.Logf("%d panels valid against Grafana's dashboard schema", len(d.Panels))
}
