package istio

// Step 1: `istioctl validate` (the validators istiod's webhook runs) and `istioctl analyze`
// (offline, over the render plus the pods, EndpointSlices and gateway a cluster would have).

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestIstioctlValidate(t *testing.T) {
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			m := render(t, topo)
			out, errOut, err := validate(t, unstructuredYAML(m.objects))
			if err != nil {
				t.Fatalf("istioctl validate: %v\n%s%s", err, out, errOut)
			}
			if !strings.Contains(string(out)+string(errOut), "is valid") {
				t.Errorf("istioctl validate said nothing about the render: %s%s", out, errOut)
			}
		})
	}
}

// validate runs `istioctl validate -f` on a stream.
func validate(t testing.TB, stream []byte) ([]byte, []byte, error) {
	return runErr(istioctl(t), "validate", "-f", writeTemp(t, "render.yaml", stream))
}

func TestIstioctlAnalyze(t *testing.T) {
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			m := render(t, topo)
			for _, msg := range analyze(t, m, unstructuredYAML(m.objects)) {
				if msg.Level == "Error" || msg.Level == "Warning" {
					t.Errorf("%s %s: %s (%s)", msg.Level, msg.Code, msg.Message, msg.Origin)
				} else {
					t.Logf("%s %s: %s (%s)", msg.Level, msg.Code, msg.Message, msg.Origin)
				}
			}
		})
	}
}

// analyzerMessage is one entry of `istioctl analyze -o json`.
type analyzerMessage struct {
	Code    string `json:"code"`
	Level   string `json:"level"`
	Message string `json:"message"`
	Origin  string `json:"origin"`
}

// analyze runs offline analysis over stream (a render, maybe altered) plus the cluster objects
// of render m: injected pods, EndpointSlices and the demo profile's gateway.
func analyze(t testing.TB, m *mesh, stream []byte) []analyzerMessage {
	t.Helper()
	c := clusterFor(t, m)
	files := []string{
		writeTemp(t, "render.yaml", stream),
		writeTemp(t, "cluster.yaml", toYAML(c.extra...)),
	}
	args := append([]string{"analyze", "--use-kube=false", "--all-namespaces", "--output", "json",
		"--meshConfigFile", demoProfile(t).meshFile}, files...)
	out, errOut, err := runErr(istioctl(t), args...)
	var msgs []analyzerMessage
	if jerr := json.Unmarshal(out, &msgs); jerr != nil {
		t.Fatalf("istioctl analyze: %v / %v\n%s%s", err, jerr, out, errOut)
	}
	return msgs
}
