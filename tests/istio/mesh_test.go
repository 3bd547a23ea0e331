package istio

// A rendered mesh read back: every document as an unstructured object, plus the few typed
// views the checks need (Deployments, the WasmPlugin's url, the service list).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

type mesh struct {
	objects     []*unstructured.Unstructured
	namespace   string
	deployments []*appsv1.Deployment
	services    []*corev1.Service
}

// parseMesh reads a multi-document YAML stream, as `deployer render` prints it.
func parseMesh(stream []byte) (*mesh, error) {
	m := &mesh{}
	var convErr error
	err := decodeEach(stream, func(u *unstructured.Unstructured) {
		m.objects = append(m.objects, u)
		switch u.GetKind() {
		case "Namespace":
			m.namespace = u.GetName()
		case "Deployment":
			d := &appsv1.Deployment{}
			convErr = errors.Join(convErr, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, d))
			m.deployments = append(m.deployments, d)
		case "Service":
			s := &corev1.Service{}
			convErr = errors.Join(convErr, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, s))
			m.services = append(m.services, s)
		}
	})
	if err = errors.Join(err, convErr); err != nil {
		return nil, err
	}
	if m.namespace == "" || len(m.deployments) == 0 {
		return nil, fmt.Errorf("the render has no Namespace or no Deployment (%d documents)", len(m.objects))
	}
	return m, nil
}

// decodeEach calls f for every non-empty document of a YAML stream.
func decodeEach(stream []byte, f func(*unstructured.Unstructured)) error {
	dec := kyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if len(doc) > 0 {
			f(&unstructured.Unstructured{Object: doc})
		}
	}
}

// names lists the mesh's services, sorted.
func (m *mesh) names() []string {
	var out []string
	for _, s := range m.services {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

// port is the service's (single) port.
func (m *mesh) port(name string) int32 {
	for _, s := range m.services {
		if s.Name == name {
			return s.Spec.Ports[0].Port
		}
	}
	return 0
}

// istioObjects are the documents of Istio kinds.
func (m *mesh) istioObjects() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m.objects {
		if strings.Contains(o.GetAPIVersion(), "istio.io/") {
			out = append(out, o)
		}
	}
	return out
}

// kubeObjects are the documents of Kubernetes kinds.
func (m *mesh) kubeObjects() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m.objects {
		// The Prometheus Operator's PodMonitor (manifests/monitoring) is neither: istiod's
		// fake cluster has no scheme for it, and it configures no proxy.
		if strings.HasPrefix(o.GetAPIVersion(), "monitoring.coreos.com/") {
			continue
		}
		if !strings.Contains(o.GetAPIVersion(), "istio.io/") {
			out = append(out, o)
		}
	}
	return out
}

// byKind returns the documents of one kind.
func (m *mesh) byKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m.objects {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// wasmPlugins are the rendered WasmPlugins' specs.
func (m *mesh) wasmPlugins() []map[string]any {
	var out []map[string]any
	for _, o := range m.byKind("WasmPlugin") {
		spec, _, _ := unstructured.NestedMap(o.Object, "spec")
		out = append(out, spec)
	}
	return out
}

// fileModuleDir is the directory a file:// WasmPlugin url points into ("" for other schemes).
func fileModuleDir(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "file" {
		return ""
	}
	return path.Dir(u.Path)
}

// toYAML joins objects into one multi-document stream.
func toYAML(objects ...any) []byte {
	var out bytes.Buffer
	for _, o := range objects {
		b, err := yaml.Marshal(o)
		if err != nil {
			panic(err)
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	return out.Bytes()
}

func unstructuredYAML(objects []*unstructured.Unstructured) []byte {
	var all []any
	for _, o := range objects {
		all = append(all, o.Object)
	}
	return toYAML(all...)
}
