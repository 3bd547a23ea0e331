// Package istio holds meshtally's Istio oracle: tests that feed every rendered mesh to Istio's
// own code (istioctl, the CRDs with their CEL rules, the sidecar injector and pilot's
// FakeDiscoveryServer) at the release pinned in scripts/versions.env.
package istio
