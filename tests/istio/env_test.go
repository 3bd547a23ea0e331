package istio

// Where things are (the repository, the pinned Istio, the built deployer), and the topologies
// every check runs on: each one rendered by the real `deployer render` binary.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is two levels up: `go test` runs in tests/istio.
func repoRoot(t testing.TB) string {
	t.Helper()
	abs, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// pins reads scripts/versions.env, the one place the Istio release is written.
func pins(t testing.TB) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "scripts/versions.env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = v
		}
	}
	if out["ISTIO_VERSION"] == "" {
		t.Fatal("scripts/versions.env has no ISTIO_VERSION")
	}
	return out
}

// istioDir is the cache scripts/setup-istio.sh fills: istioctl and the demo profile.
func istioDir(t testing.TB) string {
	return filepath.Join(repoRoot(t), ".tools", "istio-"+pins(t)["ISTIO_VERSION"])
}

// tool finds a binary the checks need, failing (never skipping) with the command that makes it.
func tool(t testing.TB, env, path, hint string) string {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		path = v
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing (%v): run `%s` first", path, err, hint)
	}
	return path
}

func istioctl(t testing.TB) string {
	return tool(t, "ISTIOCTL", filepath.Join(istioDir(t), "bin/istioctl"), "make setup")
}

func deployerBin(t testing.TB) string {
	return tool(t, "MESHTALLY_DEPLOYER", filepath.Join(repoRoot(t), "target/debug/deployer"),
		"cargo build -p meshtally-deployer")
}

// run runs a command and returns its stdout, failing the test with stderr when it fails.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, errOut, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, errOut, out)
	}
	return out
}

// runErr runs a command with a bound on its time: a tool that waits for a cluster must fail,
// not hang the suite.
func runErr(name string, args ...string) ([]byte, []byte, error) {
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.Bytes(), stderr.Bytes(), err
}

// ociDigest is any well-formed digest: Istio never downloads it in these checks.
const ociDigest = "5f1e3bd5a1c2a4cc0f8f2f09b0e6f3b1b0e1d8c4a7d2c6e9f0a1b2c3d4e5f607"

// A topology the tests render. args are `deployer render` flags; manifests means the checked-in
// default render in manifests/ instead.
type topology struct {
	name      string
	args      []string
	manifests bool
	// file, when set, is a mesh file rendered with --file.
	file string
}

var topologies = []topology{
	{name: "one-service", args: []string{"--services", "1"}},
	{name: "three-services", args: []string{"--services", "3"}},
	{name: "twelve-services", args: []string{"--services", "12"}},
	{name: "shop-from-9000", args: []string{"--services", "4", "--namespace", "shop", "--base-port", "9000"}},
	{name: "oci-module", args: []string{"--services", "3", "--wasm-url", "oci://ghcr.io/meshtally/filter@sha256:" + ociDigest}},
	{name: "manifests", manifests: true},
}

var (
	renderMu    sync.Mutex
	renderCache = map[string]*mesh{}
)

// render returns the topology's documents, rendering once per test binary.
func render(t testing.TB, topo topology) *mesh {
	t.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	if m, ok := renderCache[topo.name]; ok {
		return m
	}
	var stream []byte
	if topo.manifests {
		stream = readManifestsDir(t, filepath.Join(repoRoot(t), "manifests"))
	} else {
		module := filepath.Join(t.TempDir(), "meshtally_filter.wasm")
		if err := os.WriteFile(module, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"render"}, topo.args...)
		if topo.file != "" {
			args = append(args, "--file", writeTemp(t, "mesh.yaml", []byte(topo.file)))
		}
		if !strings.Contains(strings.Join(topo.args, " "), "--wasm-url") {
			args = append(args, "--wasm-file", module)
		}
		stream = run(t, deployerBin(t), args...)
	}
	m, err := parseMesh(stream)
	if err != nil {
		t.Fatalf("%s: %v", topo.name, err)
	}
	renderCache[topo.name] = m
	return m
}

// readManifestsDir concatenates the default render's files. Its ConfigMap holds the built module
// and is git-ignored, so it is only there after `make manifests`; nothing below needs its bytes.
// monitoring/ (the PodMonitor and the access-log EnvoyFilter) is not part of the applied
// manifests, as it is not part of `render`'s stream: it is left out too.
func readManifestsDir(t testing.TB, dir string) []byte {
	t.Helper()
	var out bytes.Buffer
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "monitoring" {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") || d.Name() == "kustomization.yaml" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&out, "---\n%s\n", b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// writeTemp writes data into the test's temporary directory.
func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
