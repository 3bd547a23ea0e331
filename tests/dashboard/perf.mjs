// How responsive the dashboard page stays with 30 services and all 870 edges: the real page
// from a running `deployer dashboard` (DASHBOARD_URL), in Debian's headless Chromium, with
// /api/graph answered by a full 30-service graph whose figures change every second (a real
// 30-service mesh calling every pair would measure the machine, not the page). Prints the time
// each update takes (fetch excluded: apply() alone, as the page measures it) and the frame
// intervals over the run, from requestAnimationFrame. A measurement, not a test: run by
// `make dashboard-perf`.
import { chromium } from "playwright-core";

const url = process.env.DASHBOARD_URL;
if (!url) throw new Error("DASHBOARD_URL is not set (make dashboard-perf sets it)");
const seconds = Number(process.env.SECONDS_TO_RUN || 15);
const SERVICES = 30;

function graph(seq) {
  const services = Array.from({ length: SERVICES }, (_, i) => `service-${String(i).padStart(2, "0")}`);
  const gateway = "istio-ingressgateway-service-account";
  const nodes = [{ id: gateway, service: gateway, version: null, kind: "gateway", reachable: true }]
    .concat(services.map((s) => ({ id: s, service: s, version: null, kind: "service", reachable: true })));
  const edges = [];
  let k = 0;
  for (const a of services) {
    for (const b of services) {
      if (a === b) continue;
      k += 1;
      // Figures that move every second, a few edges failing and a few idle.
      const rps = ((k * 7 + seq * 13) % 97) / 3;
      const success = (k + seq) % 29 === 0 ? 0.5 : (k + seq) % 11 === 0 ? 0.99 : 1;
      const idle = (k + seq) % 17 === 0;
      const health = idle ? "idle" : success < 0.8 ? "failing" : success < 0.999 ? "degraded" : "ok";
      const p99 = 1 + ((k * 3 + seq) % 50);
      edges.push({
        id: `${a}->${b}`, source: a, destination: b, destination_version: null, from: a, to: b,
        total_requests: 1000 + k, requests: idle ? 0 : Math.round(rps * 2), rps: idle ? 0 : rps,
        success_rate: idle ? null : success, p50_ms: idle ? null : p99 / 3, p99_ms: idle ? null : p99,
        verified: k % 5 !== 0, mtls_share: k % 5 !== 0 ? 1 : 0, health,
        label: idle ? "0.0 rps · - · p99 -" : `${rps.toFixed(1)} rps · ${(success * 100).toFixed(1)}% · p99 ${p99}ms`,
      });
    }
  }
  return { seq, state: "ok", hint: null, window_s: 2, nodes, edges };
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const fmt = (x) => x.toFixed(1);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  let seq = 0;
  await page.route("**/api/graph*", (route) => {
    seq += 1;
    route.fulfill({ contentType: "application/json", body: JSON.stringify(graph(seq)) });
  });
  await page.goto(url);
  await page.waitForFunction(() => window.meshtallyStats && window.meshtallyStats.updates >= 2);
  const edges = await page.evaluate(() => document.querySelectorAll("#edges g.edge").length);
  const nodes = await page.evaluate(() => document.querySelectorAll("#nodes g.node").length);
  // Frames while the page updates every second, and a hover and a click in between.
  const result = await page.evaluate(async (ms) => {
    const frames = [];
    const start = window.meshtallyStats.updates;
    const updateTimes = [];
    let last = performance.now();
    let lastSeen = window.meshtallyStats.updates;
    await new Promise((done) => {
      const began = last;
      function tick(now) {
        frames.push(now - last);
        last = now;
        if (window.meshtallyStats.updates !== lastSeen) {
          lastSeen = window.meshtallyStats.updates;
          updateTimes.push(window.meshtallyStats.lastUpdateMs);
        }
        if (now - began < ms) requestAnimationFrame(tick);
        else done();
      }
      requestAnimationFrame(tick);
    });
    return { frames, updates: window.meshtallyStats.updates - start, updateTimes };
  }, seconds * 1000);
  // A click's answer: the details panel filled.
  const clickMs = await page.evaluate(() => {
    const g = document.querySelector("#edges g.edge");
    const t0 = performance.now();
    g.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    return performance.now() - t0;
  });
  const f = result.frames.slice(1);
  const u = result.updateTimes;
  const out = {
    nodes, edges, seconds,
    updates: result.updates,
    update_ms: { median: quantile(u, 0.5), p95: quantile(u, 0.95), max: Math.max(...u) },
    frame_ms: { median: quantile(f, 0.5), p95: quantile(f, 0.95), max: Math.max(...f), frames: f.length },
    long_frames_over_50ms: f.filter((x) => x > 50).length,
    long_frames: f.filter((x) => x > 50).map((x) => Math.round(x)),
    click_to_details_ms: clickMs,
  };
  console.log(JSON.stringify(out));
  console.log(`${nodes} nodes, ${edges} edges: update ${fmt(out.update_ms.median)} ms median, ${fmt(out.update_ms.p95)} ms p95, ${fmt(out.update_ms.max)} ms max (${out.updates} updates); frame ${fmt(out.frame_ms.median)} ms median, ${fmt(out.frame_ms.p95)} ms p95, ${fmt(out.frame_ms.max)} ms max; ${out.long_frames_over_50ms} frames over 50 ms; click to details ${fmt(clickMs)} ms`);
} finally {
  await browser.close();
}
