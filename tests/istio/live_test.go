package istio

// `istioctl analyze` against a live API server: the loopback control plane (scripts/cluster.sh:
// kube-apiserver with the pinned Istio CRDs, the controller manager, the scheduler, kwok as the
// node) holding the three-service mesh the way a user without an injection webhook puts it
// there — Istio's documented manual injection (`istioctl kube-inject`, demo profile) — plus the
// demo profile's ingress gateway. Real ReplicaSets, Pods and EndpointSlices: no error, no warning.

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// liveCluster is one loopback control plane of this test's own (OS-assigned ports, a temp dir).
type liveCluster struct {
	kubeconfig, kubectl string
}

// startCluster runs `scripts/cluster.sh up` in a fresh temp dir; the control plane is stopped
// when the test ends, whatever its outcome.
func startCluster(t *testing.T) *liveCluster {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir() // removed after the Cleanup below has stopped everything (LIFO)
	script := filepath.Join(root, "scripts/cluster.sh")
	t.Cleanup(func() {
		if out, err := exec.Command(script, "down", dir).CombinedOutput(); err != nil {
			t.Errorf("cluster.sh down %s: %v\n%s", dir, err, out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, script, "up", dir).CombinedOutput(); err != nil {
		t.Fatalf("cluster.sh up %s: %v\n%s", dir, err, out)
	}
	return &liveCluster{
		kubeconfig: filepath.Join(dir, "kubeconfig"),
		kubectl:    tool(t, "KUBECTL", filepath.Join(root, ".tools/bin/kubectl"), "make setup"),
	}
}

func (c *liveCluster) run(t *testing.T, args ...string) []byte {
	t.Helper()
	return run(t, c.kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
}

// applyServerSide applies a stream with server-side apply, as `deployer apply` does.
func (c *liveCluster) applyServerSide(t *testing.T, stream []byte) {
	t.Helper()
	c.run(t, "apply", "--server-side", "--field-manager", "meshtally", "-f", writeTemp(t, "apply.yaml", stream))
}

// waitReady waits until every Deployment of the namespaces is Available and every pod Ready.
func (c *liveCluster) waitReady(t *testing.T, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		c.run(t, "wait", "-n", ns, "--for=condition=Available", "deployment", "--all", "--timeout=150s")
		c.run(t, "wait", "-n", ns, "--for=condition=Ready", "pod", "--all", "--timeout=150s")
	}
}

// pods lists a namespace's pods.
func (c *liveCluster) pods(t *testing.T, ns string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := json.Unmarshal(c.run(t, "get", "pods", "-n", ns, "-o", "json"), &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// analyzeLive runs `istioctl analyze` against the API server, over the mesh namespace and
// istio-system (the other namespaces are the control plane's own, outside any mesh). The mesh
// config is the demo profile's: there is no istiod whose ConfigMap analyze could read.
func (c *liveCluster) analyzeLive(t *testing.T, namespaces ...string) []analyzerMessage {
	t.Helper()
	var all []analyzerMessage
	for _, ns := range namespaces {
		out, errOut, err := runErr(istioctl(t), "analyze", "--kubeconfig", c.kubeconfig, "-n", ns,
			"--output", "json", "--meshConfigFile", demoProfile(t).meshFile, "--timeout", "2m")
		var msgs []analyzerMessage
		if jerr := json.Unmarshal(out, &msgs); jerr != nil {
			t.Fatalf("istioctl analyze -n %s (live): %v / %v\n%s%s", ns, err, jerr, out, errOut)
		}
		all = append(all, msgs...)
	}
	return all
}

func TestAnalyzeLive(t *testing.T) {
	started := time.Now()
	m := render(t, topologies[1])
	state := clusterFor(t, m)
	cluster := startCluster(t)
	t.Logf("control plane up in %s", time.Since(started).Round(time.Second))

	// `deployer apply` renders from the mesh model and has no input for a pre-injected stream,
	// so the manually injected render goes on with kubectl's server-side apply, under
	// meshtally's field manager, as apply would put it.
	injected := map[string]any{}
	for _, d := range state.injected {
		injected[d.Name] = d
	}
	var docs []any
	for _, o := range m.objects {
		if dep, ok := injected[o.GetName()]; ok && o.GetKind() == "Deployment" {
			docs = append(docs, dep)
		} else {
			docs = append(docs, o.Object)
		}
	}
	docs = append(docs, state.platform...)
	cluster.applyServerSide(t, toYAML(docs...))
	cluster.waitReady(t, m.namespace, istioSystem)

	var want int32
	for _, d := range m.deployments {
		want++ // a Deployment without replicas has one
		if d.Spec.Replicas != nil {
			want += *d.Spec.Replicas - 1
		}
	}
	pods := cluster.pods(t, m.namespace)
	if int32(len(pods)) != want {
		t.Fatalf("%d pods in %s, the render asks for %d replicas", len(pods), m.namespace, want)
	}
	for _, p := range append(pods, cluster.pods(t, istioSystem)...) {
		if container(p.Spec, "istio-proxy") == nil {
			t.Errorf("pod %s/%s has no istio-proxy: manual injection did not reach it", p.Namespace, p.Name)
		}
	}
	t.Logf("%d mesh pods and the gateway Ready after %s", len(pods), time.Since(started).Round(time.Second))

	for _, msg := range cluster.analyzeLive(t, m.namespace, istioSystem) {
		if msg.Level == "Error" || msg.Level == "Warning" {
			t.Errorf("%s %s: %s (%s)", msg.Level, msg.Code, msg.Message, msg.Origin)
		} else {
			t.Logf("%s %s: %s (%s)", msg.Level, msg.Code, msg.Message, msg.Origin)
		}
	}

	// Not vacuous: one more replica of the first service, as it was rendered (no sidecar), must
	// be named by the same analysis as a pod missing its proxy (IST0103), and nothing else.
	bare := bareReplica(m)
	cluster.applyServerSide(t, toYAML(bare))
	cluster.run(t, "wait", "-n", bare.Namespace, "--for=condition=Ready", "pod/"+bare.Name, "--timeout=150s")
	var caught bool
	for _, msg := range cluster.analyzeLive(t, m.namespace) {
		switch {
		case msg.Code == "IST0103" && strings.Contains(msg.Origin, bare.Name):
			caught = true
		case msg.Level == "Error" || msg.Level == "Warning":
			t.Errorf("with a sidecar-less pod: unexpected %s %s: %s (%s)", msg.Level, msg.Code, msg.Message, msg.Origin)
		}
	}
	if !caught {
		t.Errorf("istioctl analyze (live) did not report pod %s/%s missing its sidecar (IST0103)", bare.Namespace, bare.Name)
	}
	t.Logf("live analysis done in %s", time.Since(started).Round(time.Second))
}

// bareReplica is a pod of the render's first Deployment as rendered: labels, annotations and
// spec of its template, without the injector's containers.
func bareReplica(m *mesh) *corev1.Pod {
	dep := m.deployments[0]
	tmpl := dep.Spec.Template
	return &corev1.Pod{
		TypeMeta: typeMeta("v1", "Pod"),
		ObjectMeta: metav1.ObjectMeta{
			Name: dep.Name + "-no-sidecar", Namespace: dep.Namespace,
			Labels: tmpl.Labels, Annotations: tmpl.Annotations,
		},
		Spec: *tmpl.Spec.DeepCopy(),
	}
}
