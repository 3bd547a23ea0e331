// The dashboard draws the calls that leave the mesh apart, in a real browser (Debian's Chromium,
// headless, driven by playwright-core). Run by tests/e2e/egress.rs, which starts a local mesh
// with external entries, `deployer dashboard` and the traffic, and passes in the environment:
//   DASHBOARD_URL   the page
//   OUT_DIR         where the screenshot goes
//   EXTERNAL        the external node that must be drawn (a diamond, kind `external`)
//   CALLER          the service whose edge into it must be drawn
//   BLOCKED         the caller whose calls the BlackHoleCluster took (a node of kind `blocked`)
// Asserted from the DOM: the two nodes' kinds and shapes (a four-point polygon, where a service
// is a circle), the edges into them, the blocked one red, and no script error.
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set (tests/e2e/egress.rs sets it)`);
  return v;
};
const url = env("DASHBOARD_URL");
const outDir = env("OUT_DIR");
const external = env("EXTERNAL");
const caller = env("CALLER");
const blocked = env("BLOCKED");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function readDom() {
  return {
    nodes: [...document.querySelectorAll("#nodes g.node")].map((g) => ({
      id: g.dataset.id, kind: g.dataset.kind, shape: g.firstChild.tagName,
      points: g.firstChild.getAttribute("points"),
    })),
    edges: [...document.querySelectorAll("#edges g.edge")].map((g) => ({
      pair: `${g.dataset.source}>${g.dataset.destination}`, health: g.dataset.health,
    })),
  };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  const began = Date.now();
  let dom;
  const ready = (d) =>
    d.nodes.some((n) => n.id === external) && d.nodes.some((n) => n.id === "BlackHoleCluster") &&
    d.edges.some((e) => e.pair === `${caller}>${external}`) &&
    d.edges.some((e) => e.pair === `${blocked}>BlackHoleCluster` && e.health === "failing");
  do {
    dom = await page.evaluate(readDom);
    if (ready(dom)) break;
    await sleep(100);
  } while (Date.now() - began < 30000);
  assert.ok(ready(dom), `the external and blocked nodes and edges within 30 s: ${JSON.stringify(dom, null, 1)}`);
  const node = (id) => dom.nodes.find((n) => n.id === id);
  assert.equal(node(external).kind, "external");
  assert.equal(node(external).shape, "polygon", "an external host is a diamond");
  assert.equal(node(external).points.trim().split(/\s+/).length, 4, "four corners");
  assert.equal(node("BlackHoleCluster").kind, "blocked");
  assert.equal(node("BlackHoleCluster").shape, "polygon");
  assert.equal(node(caller).shape, "circle", "a service is a circle");
  assert.deepEqual(errors, [], "no script error");
  await page.screenshot({ path: join(outDir, "dashboard-external.png") });
  console.log(`external ${external} and BlackHoleCluster drawn as diamonds after ${Date.now() - began} ms`);
} finally {
  await browser.close();
}
