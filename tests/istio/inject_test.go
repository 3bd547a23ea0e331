package istio

// Step 3: the real sidecar injector (`istioctl kube-inject` with the demo profile's template,
// values and mesh config) on every rendered Deployment. A file:// WasmPlugin only works if the
// injected istio-proxy container has the module's ConfigMap mounted, read-only, at exactly the
// directory the url points into.

import (
	"path"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestSidecarInjection(t *testing.T) {
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			m := render(t, topo)
			c := clusterFor(t, m)
			plugins := m.wasmPlugins()
			if len(plugins) == 0 {
				t.Fatal("no WasmPlugin rendered")
			}
			for _, dep := range c.injected {
				for _, p := range plugins {
					url, _ := p["url"].(string)
					checkModuleMount(t, m, dep, url)
				}
			}
		})
	}
}

// checkModuleMount asserts what a WasmPlugin url needs from an injected Deployment.
func checkModuleMount(t *testing.T, m *mesh, dep *appsv1.Deployment, url string) {
	t.Helper()
	spec := dep.Spec.Template.Spec
	proxy := container(spec, "istio-proxy")
	if proxy == nil {
		t.Fatalf("%s: the injector added no istio-proxy container", dep.Name)
	}
	dir := fileModuleDir(url)
	if dir == "" {
		// A remote module is fetched by the sidecar agent; nothing needs mounting.
		for _, v := range spec.Volumes {
			if v.ConfigMap != nil && v.ConfigMap.Name == "meshtally-filter" {
				t.Errorf("%s: url %s is remote, yet the module ConfigMap is mounted", dep.Name, url)
			}
		}
		return
	}
	var mounted bool
	for _, mnt := range proxy.VolumeMounts {
		if mnt.MountPath != dir {
			continue
		}
		mounted = true
		vol := volume(spec, mnt.Name)
		switch {
		case vol == nil || vol.ConfigMap == nil:
			t.Errorf("%s: %s is mounted from %q, which is no ConfigMap volume", dep.Name, dir, mnt.Name)
		case !mnt.ReadOnly:
			t.Errorf("%s: the module directory %s is mounted read-write", dep.Name, dir)
		default:
			for _, cm := range m.byKind("ConfigMap") {
				if cm.GetName() != vol.ConfigMap.Name {
					t.Errorf("%s: mounts ConfigMap %q, the render ships %q", dep.Name, vol.ConfigMap.Name, cm.GetName())
				}
				if _, ok := cm.Object["binaryData"].(map[string]any)[path.Base(url)]; !ok {
					t.Errorf("%s: ConfigMap %s has no key %s for %s", dep.Name, cm.GetName(), path.Base(url), url)
				}
			}
		}
	}
	if !mounted {
		t.Errorf("%s: istio-proxy does not mount %s (the WasmPlugin loads %s); mounts: %+v",
			dep.Name, dir, url, proxy.VolumeMounts)
	}
}

func container(spec corev1.PodSpec, name string) *corev1.Container {
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	for i := range spec.InitContainers { // native sidecars
		if spec.InitContainers[i].Name == name {
			return &spec.InitContainers[i]
		}
	}
	return nil
}

func volume(spec corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}
