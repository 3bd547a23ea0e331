// Shows that validate.mjs can fail: each broken document below must be reported.
// Run with `npm test --prefix tests/schema` (node's test runner).

import { test } from "node:test";
import assert from "node:assert/strict";

import { validateText } from "./validate.mjs";

const good = `---
apiVersion: v1
kind: Service
metadata:
  name: a
spec:
  ports:
  - name: http
    port: 8000
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
spec:
  mtls:
    mode: STRICT
`;

test("good documents pass and are counted", () => {
  assert.deepEqual(validateText(good, "t"), [2, []]);
});

const broken = {
  "a wrong type": "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  ports:\n  - port: http\n",
  "a missing required field": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  template: {}\n",
  "a bad Istio enum": "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: a\nspec:\n  mtls:\n    mode: STRICTER\n",
  "a bad WasmPlugin phase": "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata:\n  name: a\nspec:\n  url: oci://x\n  phase: LAST\n",
  "an unknown kind": "apiVersion: v1\nkind: Pod2\nmetadata:\n  name: a\n",
  "an unknown apiVersion": "apiVersion: networking.istio.io/v9\nkind: Gateway\nmetadata:\n  name: a\n",
  "broken YAML": "apiVersion: v1\nkind: [Service\n",
};

for (const [what, text] of Object.entries(broken)) {
  test(`reports ${what}`, () => {
    const [count, problems] = validateText(text, "t");
    assert.equal(count, 1);
    assert.ok(problems.length > 0, "expected a problem");
  });
}
