#!/usr/bin/env node
// Validates multi-document YAML (Kubernetes and Istio objects) against the published schemas
// that `kubernetes-models`, `@kubernetes-models/istio` and `@kubernetes-models/prometheus-operator`
// (the PodMonitor CRD's) ship. Reads the files named on the
// command line, or stdin when there are none (or for "-"). Prints one line per problem, naming
// the document's kind and name, then how many documents were checked; exits 1 on any problem.
//
// A document whose apiVersion/kind has no schema here is a problem too, so a new kind can never
// pass unchecked. The schemas check types, required fields and enums; like the API server's
// OpenAPI validation they let unknown fields through.

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseAllDocuments } from "yaml";

import * as core from "kubernetes-models/v1";
import * as apps from "kubernetes-models/apps/v1";
import * as networking from "@kubernetes-models/istio/networking.istio.io/v1";
import * as networkingAlpha from "@kubernetes-models/istio/networking.istio.io/v1alpha3";
import * as security from "@kubernetes-models/istio/security.istio.io/v1";
import * as extensions from "@kubernetes-models/istio/extensions.istio.io/v1alpha1";
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

// apiVersion -> the module whose exports are the model classes, by kind.
const GROUPS = {
  v1: core,
  "apps/v1": apps,
  "networking.istio.io/v1": networking,
  "networking.istio.io/v1alpha3": networkingAlpha,
  "security.istio.io/v1": security,
  "extensions.istio.io/v1alpha1": extensions,
  "monitoring.coreos.com/v1": monitoring,
};

/** The problems with one parsed document, as strings. */
export function problemsOf(object) {
  if (object === null || typeof object !== "object" || Array.isArray(object)) {
    return ["document is not a mapping"];
  }
  const { apiVersion, kind } = object;
  const group = Object.hasOwn(GROUPS, apiVersion) ? GROUPS[apiVersion] : undefined;
  const Model = group && Object.hasOwn(group, kind) ? group[kind] : undefined;
  if (typeof Model !== "function" || Model.apiVersion !== apiVersion || Model.kind !== kind) {
    return [`no schema for apiVersion ${apiVersion} kind ${kind}`];
  }
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    const details = Array.isArray(error.errors) ? error.errors : [];
    if (details.length === 0) return [String(error.message ?? error)];
    return details.map((e) => `${e.instancePath || "/"} ${e.message}`);
  }
}

/** Validates every document of a YAML text; returns [documentsChecked, problemLines]. */
export function validateText(text, source) {
  const lines = [];
  let count = 0;
  for (const doc of parseAllDocuments(text)) {
    const where = `${source}: document ${count + 1}`;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) lines.push(`${where}: yaml: ${e.message.split("\n")[0]}`);
      count += 1;
      continue;
    }
    const object = doc.toJS();
    // A stray `---` with nothing after it is no document.
    if (object === null || object === undefined) continue;
    count += 1;
    const label = `${object.kind ?? "?"}/${object.metadata?.name ?? "?"}`;
    for (const problem of problemsOf(object)) lines.push(`${where} (${label}): ${problem}`);
  }
  return [count, lines];
}

function main(args) {
  const inputs = args.length === 0 ? ["-"] : args;
  let total = 0;
  let failed = 0;
  for (const input of inputs) {
    const text = readFileSync(input === "-" ? 0 : input, "utf8");
    const [count, lines] = validateText(text, input === "-" ? "stdin" : input);
    total += count;
    failed += lines.length;
    for (const line of lines) console.error(line);
  }
  if (total === 0) {
    console.error("no documents to validate");
    return 1;
  }
  console.log(`validated ${total} documents, ${failed} problems`);
  return failed === 0 ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
