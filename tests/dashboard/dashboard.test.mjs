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
//   GATEWAY         the gateway's name as its callees see it
// Everything is asserted from the DOM, against /api/graph for the graph the page drew; where
// things are drawn, from getBoundingClientRect() (what a person sees).
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
const gateway = env("GATEWAY");
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
      health: g.dataset.health, title: g.querySelector("title") ? g.querySelector("title").textContent : null,
    })),
    edges: [...document.querySelectorAll("#edges g.edge")].map((g) => ({
      source: g.dataset.source,
      destination: g.dataset.destination,
      health: g.dataset.health,
      label: g.querySelector("text.label").textContent,
      locks: g.querySelectorAll("g.lock").length,
      stroke: getComputedStyle(g.querySelector("path.line")).stroke,
      cause: g.dataset.cause || null,
      title: g.querySelector("title") ? g.querySelector("title").textContent : null,
    })),
  };
}

// Where things are on the screen, in one task: each edge label's box (with its lock), each
// node's shape (circle, or the gateway's box) and name, and each arrowhead's tip and the point
// 10 px back along the curve, in the page's pixels.
function readPlaces() {
  const box = (e) => {
    const r = e.getBoundingClientRect();
    return { x: r.left, y: r.top, w: r.width, h: r.height };
  };
  const nodes = [...document.querySelectorAll("#nodes g.node")].map((g) => {
    const shape = g.querySelector("circle, rect");
    return {
      id: g.dataset.id, circle: shape.tagName === "circle",
      shape: box(shape), texts: [...g.querySelectorAll("text")].filter((t) => t.textContent).map(box),
    };
  });
  const edges = [...document.querySelectorAll("#edges g.edge")].map((g) => {
    const line = g.querySelector("path.line");
    const ctm = line.getScreenCTM();
    const len = line.getTotalLength();
    const point = (at) => {
      const p = line.getPointAtLength(at);
      const s = new DOMPoint(p.x, p.y).matrixTransform(ctm);
      return { x: s.x, y: s.y };
    };
    const lock = g.querySelector("g.lock");
    return {
      pair: `${g.dataset.source}>${g.dataset.destination}`, to: g.dataset.id.split("->")[1],
      label: box(g.querySelector("text.label")), lock: lock ? box(lock) : null,
      tip: point(len), back: point(Math.max(0, len - 10)),
    };
  });
  return { nodes, edges };
}

const overlaps = (a, b) =>
  Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x) > 0 && Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y) > 0;
const inside = (p, b) => p.x > b.x && p.x < b.x + b.w && p.y > b.y && p.y < b.y + b.h;
const show = (b) => `[${b.x.toFixed(0)},${b.y.toFixed(0)} ${b.w.toFixed(0)}×${b.h.toFixed(0)}]`;

// No edge label (nor its lock) over another label, a node or a node's name; every arrowhead's
// tip on its callee's outline (±3 px) and under no label nor name.
async function checkPlaces(page, when) {
  const { nodes, edges } = await page.evaluate(readPlaces);
  const problems = [];
  for (let i = 0; i < edges.length; i++) {
    const mine = [edges[i].label, edges[i].lock].filter(Boolean);
    for (let j = i + 1; j < edges.length; j++) {
      for (const b of [edges[j].label, edges[j].lock].filter(Boolean)) {
        if (mine.some((a) => overlaps(a, b))) problems.push(`the labels of ${edges[i].pair} ${show(edges[i].label)} and ${edges[j].pair} ${show(edges[j].label)} overlap`);
      }
    }
    for (const n of nodes) {
      for (const b of [n.shape, ...n.texts]) {
        if (mine.some((a) => overlaps(a, b))) problems.push(`the label of ${edges[i].pair} ${show(edges[i].label)} lies on node ${n.id} ${show(b)}`);
      }
    }
  }
  for (const e of edges) {
    const callee = nodes.find((n) => n.id === e.to);
    if (callee && callee.circle) {
      const c = { x: callee.shape.x + callee.shape.w / 2, y: callee.shape.y + callee.shape.h / 2 };
      const off = Math.hypot(e.tip.x - c.x, e.tip.y - c.y) - callee.shape.w / 2;
      if (Math.abs(off) > 3) problems.push(`the arrow of ${e.pair} ends ${off.toFixed(1)} px off ${callee.id}'s circle`);
    }
    for (const p of [e.tip, e.back]) {
      for (const o of edges) {
        if ([o.label, o.lock].filter(Boolean).some((b) => inside(p, b))) problems.push(`the arrowhead of ${e.pair} is under the label of ${o.pair}`);
      }
      for (const n of nodes) {
        if (n.texts.some((b) => inside(p, b))) problems.push(`the arrowhead of ${e.pair} is under node ${n.id}'s name`);
      }
    }
  }
  assert.deepEqual(problems, [], `${when}: the drawing has overlaps`);
  console.log(`${when}: ${edges.length} edge labels, ${nodes.length} nodes: no overlap, every arrowhead clear`);
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
  // How to start it, or, when another mesh runs on this machine (another test's), where.
  // (Hints name this deployer by its path when it is not the one on PATH.)
  assert.match(none.hint, /(^|[ `'\/])deployer up --state-dir |a mesh is running in .*pass --state-dir /);
  writeFileSync(join(outDir, "no-mesh-seen"), "");
  const idle = (await waitFor(page, "the mesh's nodes without traffic", (d) =>
    d.state === "no-traffic" && d.nodes.filter((n) => n.kind === "service").length === services.length, 60000)).dom;
  assert.equal(idle.edges.length, 0);
  // The hint names the deployer that runs the dashboard (by its path when it is not on PATH).
  assert.match(idle.hint, /^no calls yet: send some traffic \((\S*\/)?deployer verify --state-dir /);
  await page.screenshot({ path: join(outDir, "dashboard-no-traffic.png") });
  writeFileSync(join(outDir, "no-traffic-seen"), "");

  // 1. Every expected pair drawn, with traffic in the last window.
  const { dom } = await waitFor(page, "every expected edge, active, every node up", (d) =>
    d.state === "ok" && d.nodes.every((n) => n.health === "up") &&
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
  // Both ways between two services: two edges, apart.
  assert.ok(expected.some((p) => { const [a, b] = p.split(">"); return expected.includes(`${b}>${a}`); }), "no pair with traffic both ways");
  assert.ok(dom.edges.every((e) => e.cause === null), "a cause on an edge while every node is up");
  await checkPlaces(page, "with traffic");
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

  // 3. Kill a service's app (again each time the supervisor restarts it): its node shows
  // `restarting` within 2 s, the edges into it turn red within 3 s and name it as the cause,
  // and so do the gateway's edges into its callers (up, but passing its errors back).
  const into = expected.filter((p) => p.endsWith(">" + kill));
  assert.ok(into.length > 0, `no expected edge into ${kill}`);
  const relays = services.filter((s) => s !== kill && expected.includes(`${s}>${kill}`));
  const relayed = relays.map((s) => `${gateway}>${s}`).filter((p) => expected.includes(p));
  assert.ok(relayed.length > 0, `no gateway edge into a caller of ${kill}`);
  const killer = setInterval(() => {
    try {
      const pids = JSON.parse(readFileSync(join(stateDir, "pids.json"), "utf8"));
      const pid = pids[kill];
      if (pid) process.kill(pid, "SIGKILL");
    } catch {
      // Not there or already gone: the next round tries again.
    }
  }, 50);
  const killedAt = Date.now();
  let down, downMs, redMs, blamedMs;
  try {
    // The node first: from `deployer status`'s checks, before any window of failed calls.
    down = await waitFor(page, `${kill}'s node restarting`, (d) =>
      d.nodes.some((n) => n.service === kill && n.health === "restarting"), 2000);
    downMs = Date.now() - killedAt;
    const node = down.dom.nodes.find((n) => n.service === kill);
    assert.match(node.title, new RegExp(`^${kill}( \\S+)?: restarting: app not (running|answering)`));
    assert.ok(down.dom.nodes.filter((n) => n.service !== kill).every((n) => n.health === "up"), "only the killed node is down");
    await waitFor(page, `edges into ${kill} red and blamed on it`, (d) =>
      into.every((p) => d.edges.some((e) => pair(e) === p && e.health === "failing" && e.stroke === "rgb(211, 47, 47)" &&
        e.cause && e.cause.startsWith(`${kill} is restarting: app not `) && e.title.includes(`failing: ${kill} is restarting`))),
      Math.max(0, 3000 - (Date.now() - killedAt)));
    redMs = Date.now() - killedAt;
    await waitFor(page, `the gateway's failing edges into ${relays.join(", ")} blamed on ${kill}`, (d) =>
      relayed.every((p) => d.edges.some((e) => pair(e) === p && e.health === "failing" &&
        e.cause && e.cause.startsWith(`${p.split(">")[1]}'s callee ${kill} is restarting`))), 8000);
    blamedMs = Date.now() - killedAt;
  } finally {
    clearInterval(killer);
  }
  console.log(`${kill}'s node showed restarting ${downMs} ms after its app was killed (${down.ms} ms of waiting)`);
  console.log(`edges into ${kill} red and blamed on it ${redMs} ms after; the gateway's edges into ${relays.join(", ")} blamed on it ${blamedMs} ms after`);
  await checkPlaces(page, `${kill} restarting`);
  await page.screenshot({ path: join(outDir, "dashboard-killed.png") });
  assert.deepEqual(errors, [], "errors in the page");
  console.log("dashboard test: all assertions passed");
} finally {
  await browser.close();
}
