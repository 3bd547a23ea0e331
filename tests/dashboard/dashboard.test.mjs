// The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core.
// Run by tests/tests/dashboard.rs, which starts `deployer dashboard`, then (when this script
// says so, by a file in OUT_DIR) the local mesh, then the traffic, and passes what it knows in
// the environment:
//   DASHBOARD_URL   the page
//   OUT_DIR         where the screenshots go
//   STATE_DIR       the mesh's state dir (pids.json: the process to kill)
//   SERVICES        the mesh's services, comma-separated
//   EXPECTED_EDGES  the caller>callee pairs the traffic makes, comma-separated
//   VERIFIED_EDGES  the pairs among them whose calls a certificate proved
//   KILL            the service whose app is killed at the end
// Everything is asserted from the DOM, against /api/graph for the graph the page drew.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set (tests/tests/dashboard.rs sets it)`);
  return v;
};
const list = (name) => env(name).split(",").filter(Boolean);
const url = env("DASHBOARD_URL");
const outDir = env("OUT_DIR");
const stateDir = env("STATE_DIR");
const services = list("SERVICES");
const expected = list("EXPECTED_EDGES").sort();
const verified = list("VERIFIED_EDGES").sort();
const kill = env("KILL");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One consistent read of what the page shows: done in one task, so no update lands half-way.
function readDom() {
  const map = document.getElementById("map");
  return {
    seq: Number(map.dataset.seq),
    state: document.body.dataset.state,
    hint: document.getElementById("hint").hidden ? null : document.getElementById("hint").textContent,
    nodes: [...document.querySelectorAll("#nodes g.node")].map((g) => ({
      id: g.dataset.id, service: g.dataset.service, kind: g.dataset.kind, reachable: g.dataset.reachable,
    })),
    edges: [...document.querySelectorAll("#edges g.edge")].map((g) => ({
      source: g.dataset.source,
      destination: g.dataset.destination,
      health: g.dataset.health,
      label: g.querySelector("text.label").textContent,
      locks: g.querySelectorAll("g.lock").length,
      stroke: getComputedStyle(g.querySelector("path.line")).stroke,
    })),
  };
}

async function waitFor(page, what, predicate, timeoutMs) {
  const began = Date.now();
  let last;
  while (Date.now() - began < timeoutMs) {
    last = await page.evaluate(readDom);
    if (predicate(last)) return { dom: last, ms: Date.now() - began };
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms; the page showed ${JSON.stringify(last, null, 1)}`);
}

const pair = (e) => `${e.source}>${e.destination}`;

const browser = await chromium.launch({
  executablePath: chromiumPath,
  // CI runs as root, where Chromium's sandbox cannot start.
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);

  // 0. Before the mesh runs: nothing drawn, the page says how to start it. Then, once the
  // test has started the mesh (we say when we are ready for it), the page finds it by itself:
  // the nodes, no edge, and a hint to send traffic.
  const none = (await waitFor(page, "the not-running page", (d) => d.state === "not-running", 20000)).dom;
  assert.equal(none.nodes.length, 0);
  assert.match(none.hint, /deployer up --state-dir /);
  writeFileSync(join(outDir, "no-mesh-seen"), "");
  const idle = (await waitFor(page, "the mesh's nodes without traffic", (d) =>
    d.state === "no-traffic" && d.nodes.filter((n) => n.kind === "service").length === services.length, 60000)).dom;
  assert.equal(idle.edges.length, 0);
  // The hint names the deployer that runs the dashboard (by its path when it is not on PATH).
  assert.match(idle.hint, /^no calls yet: send some traffic \((\S*\/)?deployer verify --state-dir /);
  await page.screenshot({ path: join(outDir, "dashboard-no-traffic.png") });
  writeFileSync(join(outDir, "no-traffic-seen"), "");

  // 1. Every expected pair drawn, with traffic in the last window.
  const { dom } = await waitFor(page, "every expected edge, active", (d) =>
    d.state === "ok" &&
    expected.every((p) => d.edges.some((e) => pair(e) === p && e.health === "ok")), 20000);
  const api = await (await fetch(new URL(`/api/graph?seq=${dom.seq}`, url))).json();
  assert.equal(api.seq, dom.seq);

  // One node per service, with data-service; the gateway beside them.
  const serviceNodes = dom.nodes.filter((n) => n.kind === "service");
  assert.deepEqual(serviceNodes.map((n) => n.service).sort(), [...services].sort(), "one node per service");
  assert.equal(new Set(serviceNodes.map((n) => n.service)).size, serviceNodes.length, "no service twice");
  assert.equal(dom.nodes.filter((n) => n.kind === "gateway").length, 1, "the gateway");

  // One edge per observed pair: the page's, the API's and the traffic's sets are the same.
  const domPairs = dom.edges.map(pair).sort();
  assert.equal(new Set(domPairs).size, domPairs.length, "an edge drawn twice");
  assert.deepEqual(domPairs, api.edges.map(pair).sort(), "page edges = /api/graph edges");
  assert.deepEqual(domPairs, expected, "page edges = the pairs the traffic made");
  // Labels as the API gives them, and numbers that are the API's figures.
  for (const e of api.edges) {
    const drawn = dom.edges.find((d) => pair(d) === pair(e));
    assert.equal(drawn.label, e.label, `label of ${pair(e)}`);
    assert.match(drawn.label, new RegExp(`^${e.rps.toFixed(1)} rps · ${(e.success_rate * 100).toFixed(1)}% · p99 `));
  }
  // Locks on exactly the verified edges.
  const locked = dom.edges.filter((e) => e.locks > 0).map(pair).sort();
  assert.ok(dom.edges.every((e) => e.locks <= 1));
  assert.deepEqual(locked, api.edges.filter((e) => e.verified).map(pair).sort(), "locks = API's verified");
  assert.deepEqual(locked, verified, "locks = the calls a certificate proved");
  await page.screenshot({ path: join(outDir, "dashboard.png") });

  // 2. Details: a click on an edge shows its top figures and its last calls.
  const first = expected.find((p) => p.startsWith(services[0] + ">")) || expected[0];
  const [src, dst] = first.split(">");
  await page.click(`#edges g.edge[data-source="${src}"][data-destination="${dst}"] text.label`);
  await page.waitForSelector("#details:not([hidden])");
  const title = await page.textContent("#details-title");
  const clicked = api.edges.find((e) => e.source === src && e.destination === dst);
  assert.equal(title, `${src} → ${dst}${clicked.destination_version ? " " + clicked.destination_version : ""}`);
  const figures = await page.textContent("#figures");
  assert.match(figures, /requests\/s/);
  assert.match(figures, /p99/);
  await page.waitForFunction(() => document.getElementById("tap").textContent !== "…", null, { timeout: 10000 });
  const tap = await page.textContent("#tap");
  console.log(`details of ${first}: tap says:\n${tap.split("\n").slice(0, 3).join("\n")}`);
  await page.click("#close");

  // 3. Kill a service's app (again each time the supervisor restarts it): the edges into it
  // turn red within 3 s.
  const into = expected.filter((p) => p.endsWith(">" + kill));
  assert.ok(into.length > 0, `no expected edge into ${kill}`);
  const killer = setInterval(() => {
    try {
      const pids = JSON.parse(readFileSync(join(stateDir, "pids.json"), "utf8"));
      const pid = pids[kill];
      if (pid) process.kill(pid, "SIGKILL");
    } catch {
      // Not there or already gone: the next round tries again.
    }
  }, 50);
  let red;
  try {
    red = await waitFor(page, `edges into ${kill} red`, (d) =>
      into.every((p) => d.edges.some((e) => pair(e) === p && e.health === "failing" && e.stroke === "rgb(211, 47, 47)")), 3000);
  } finally {
    clearInterval(killer);
  }
  console.log(`edges into ${kill} turned red ${red.ms} ms after its app was killed`);
  await page.screenshot({ path: join(outDir, "dashboard-killed.png") });
  assert.deepEqual(errors, [], "errors in the page");
  console.log("dashboard test: all assertions passed");
} finally {
  await browser.close();
}
