// The mesh map: fetches /api/graph twice a second and updates the SVG in place (no reload, no
// library). Nodes sit on an ellipse in the order the server gives them (the gateway first, on
// the left), so the same mesh is always drawn the same way, each with its name on the outer
// side, where no edge arrives. Edges are curves bowed to the right of their direction, so a→b
// and b→a are two curves on opposite sides; each ends on its callee's outline, and its label
// is put beside its own curve where it covers no other label, node or arrowhead. Everything
// shown is decided by the server (dashboard/graph.rs): colours come from each edge's and
// node's `health`, the label is the server's `label`, the lock its `verified`.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
// The server reads the mesh every second; asking twice as often shows a read within half a
// second of it (a killed app's node turns within ~1.5 s), and an unchanged read is not redrawn.
const REFRESH_MS = 500;
const DENSE_EDGES = 60;
const map = document.getElementById("map");
const edgesLayer = document.getElementById("edges");
const nodesLayer = document.getElementById("nodes");
const nodeEls = new Map();
const edgeEls = new Map();
let positions = new Map();
let layoutKey = "";
let edgeKey = "";
let size = "";
const geometries = new Map();
let graph = null;
let selected = null;
// What the page measured, for the responsiveness test and anyone curious (devtools).
const stats = (window.meshtallyStats = { updates: 0, lastUpdateMs: 0, maxUpdateMs: 0, totalUpdateMs: 0, errors: 0 });

function el(tag, attrs, parent) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function set(e, name, value) {
  const v = value === null || value === undefined ? null : String(value);
  if (v === null) {
    if (e.hasAttribute(name)) e.removeAttribute(name);
  } else if (e.getAttribute(name) !== v) {
    e.setAttribute(name, v);
  }
}

function text(e, value) {
  if (e.textContent !== value) e.textContent = value;
}

function radius(n) {
  return n > 24 ? 14 : 22;
}

function layout(nodes) {
  const w = map.clientWidth || 1000;
  const h = map.clientHeight || 700;
  const key = nodes.map((n) => n.id).join("|");
  if (key === layoutKey && size === `${w}x${h}` ) return false;
  layoutKey = key;
  size = `${w}x${h}`;
  const cx = w / 2, cy = h / 2;
  // Room outside the ellipse for the names, which are written on the outer side.
  const rx = Math.max(60, w / 2 - 150), ry = Math.max(60, h / 2 - 70);
  positions = new Map();
  nodes.forEach((n, i) => {
    // From the left (the gateway), clockwise.
    const a = Math.PI + (2 * Math.PI * i) / Math.max(1, nodes.length);
    positions.set(n.id, { x: cx + rx * Math.cos(a), y: cy + ry * Math.sin(a), a, kind: n.kind });
  });
  return true;
}

// How far a node's outline is from its centre in the direction (ux, uy): the gateway is a
// 3.2r × 2r box, a service outside the mesh a diamond of half-diagonal r (as Kiali draws
// ServiceEntry nodes apart), every other node a circle of radius r.
function extent(p, r, ux, uy) {
  if (p.kind === "external" || p.kind === "blocked") return r / (Math.abs(ux) + Math.abs(uy) || 1);
  if (p.kind !== "gateway") return r;
  return Math.min(Math.abs(ux) > 1e-6 ? (r * 1.6) / Math.abs(ux) : Infinity, Math.abs(uy) > 1e-6 ? r / Math.abs(uy) : Infinity);
}

const HEALTH_WORDS = { up: "up", restarting: "restarting", unreachable: "unreachable" };

function drawNodes(nodes, moved) {
  const r = radius(nodes.length);
  const seen = new Set();
  for (const n of nodes) {
    seen.add(n.id);
    // A graph from an older server (or the perf test's) has no health: what it read is up.
    const health = n.health || (n.reachable ? "up" : "unreachable");
    let g = nodeEls.get(n.id);
    if (!g) {
      g = el("g", { class: "node" }, nodesLayer);
      if (n.kind === "gateway") el("rect", { class: "shape" }, g);
      else if (n.kind === "external" || n.kind === "blocked") el("polygon", { class: "shape" }, g);
      else el("circle", { class: "shape" }, g);
      el("circle", { class: "badge", r: 5 }, g);
      el("text", { class: "name" }, g);
      el("text", { class: "state" }, g);
      el("title", {}, g);
      g.addEventListener("click", () => select({ type: "node", id: n.id }));
      nodeEls.set(n.id, g);
      moved = true;
    }
    set(g, "class", `node ${n.kind} health-${health}${selected && selected.id === n.id ? " selected" : ""}`);
    set(g, "data-id", n.id);
    set(g, "data-service", n.service);
    set(g, "data-version", n.version);
    set(g, "data-kind", n.kind);
    set(g, "data-reachable", n.reachable);
    set(g, "data-health", health);
    set(g, "data-health-detail", n.health_detail);
    const name = g.querySelector("text.name");
    const state = g.querySelector("text.state");
    const shown = n.kind === "gateway" ? "ingress gateway" : n.kind === "blocked" ? `${n.service} (blocked)` : n.version ? `${n.service} ${n.version}` : n.service;
    // The gateway's calls carry its service account's name; the map calls it what it is.
    text(name, shown);
    const word = health === "up" ? "" : HEALTH_WORDS[health] || health;
    const wordChanged = state.textContent !== word;
    text(state, word);
    text(g.querySelector("title"), `${shown}: ${HEALTH_WORDS[health] || health}${n.health_detail ? `: ${n.health_detail}` : ""}`);
    if (moved || wordChanged) {
      const p = positions.get(n.id);
      const shape = g.firstChild;
      if (shape.tagName === "rect") {
        set(shape, "x", p.x - r * 1.6); set(shape, "y", p.y - r); set(shape, "width", r * 3.2); set(shape, "height", r * 2); set(shape, "rx", 6);
      } else if (shape.tagName === "polygon") {
        set(shape, "points", `${p.x},${p.y - r} ${p.x + r},${p.y} ${p.x},${p.y + r} ${p.x - r},${p.y}`);
      } else {
        set(shape, "cx", p.x); set(shape, "cy", p.y); set(shape, "r", r);
      }
      const badge = g.querySelector("circle.badge");
      const bx = shape.tagName === "rect" ? r * 1.6 - 2 : r * 0.72;
      set(badge, "cx", (p.x + bx).toFixed(1)); set(badge, "cy", (p.y - r * 0.72).toFixed(1));
      // The name (and the state under it) on the side facing away from the ellipse's centre:
      // the other nodes, and so the edges, are all on the inner side.
      const cos = Math.cos(p.a), sin = Math.sin(p.a);
      let x, y, anchor;
      if (Math.abs(cos) >= 0.6) {
        x = p.x + Math.sign(cos) * (extent(p, r, Math.sign(cos), 0) + 8);
        y = p.y + (word ? -2 : 4);
        anchor = cos > 0 ? "start" : "end";
      } else if (sin > 0) {
        x = p.x; y = p.y + r + 14; anchor = "middle";
      } else {
        x = p.x; y = p.y - r - (word ? 22 : 8); anchor = "middle";
      }
      set(name, "x", x.toFixed(1)); set(name, "y", y.toFixed(1)); set(name, "text-anchor", anchor);
      set(state, "x", x.toFixed(1)); set(state, "y", (y + 14).toFixed(1)); set(state, "text-anchor", anchor);
    }
  }
  for (const [id, g] of nodeEls) if (!seen.has(id)) { g.remove(); nodeEls.delete(id); }
}

// An edge's curve: a quadratic from the caller's outline to the callee's, bowed to the right
// of its direction (so a→b and b→a bow to opposite sides; more when both exist, so their
// labels, each on its own curve's outer side, stay well apart). Its ends are where the line
// towards the control point leaves each outline, so the arrowhead's tip touches the callee's
// outline instead of reaching under it.
function geometry(e, r, twoWay) {
  const a = positions.get(e.from), b = positions.get(e.to);
  if (!a || !b) return null;
  const dx = b.x - a.x, dy = b.y - a.y;
  const len = Math.hypot(dx, dy) || 1;
  const ux = dx / len, uy = dy / len;
  const bow = twoWay ? Math.min(90, Math.max(40, len * 0.2)) : Math.min(60, len * 0.15);
  const mx = (a.x + b.x) / 2 - uy * bow, my = (a.y + b.y) / 2 + ux * bow;
  const toward = (p) => {
    const vx = mx - p.x, vy = my - p.y, l = Math.hypot(vx, vy) || 1;
    return { x: vx / l, y: vy / l };
  };
  const da = toward(a), db = toward(b);
  const ea = extent(a, r, da.x, da.y), eb = extent(b, r, db.x, db.y) + 1;
  const sx = a.x + da.x * ea, sy = a.y + da.y * ea, tx = b.x + db.x * eb, ty = b.y + db.y * eb;
  // The curve's midpoint (t = 0.5): where a label goes when nothing is in the way.
  const lx = 0.25 * sx + 0.5 * mx + 0.25 * tx, ly = 0.25 * sy + 0.5 * my + 0.25 * ty;
  return {
    d: `M${sx.toFixed(1)},${sy.toFixed(1)} Q${mx.toFixed(1)},${my.toFixed(1)} ${tx.toFixed(1)},${ty.toFixed(1)}`,
    lx, ly, sx, sy, mx, my, tx, ty,
    // The arrowhead's direction at the tip (the curve's tangent there).
    dir: { x: -db.x, y: -db.y },
  };
}

function at(geo, t) {
  const u = 1 - t;
  return {
    x: u * u * geo.sx + 2 * u * t * geo.mx + t * t * geo.tx,
    y: u * u * geo.sy + 2 * u * t * geo.my + t * t * geo.ty,
    // The tangent, for the normal a label is pushed along.
    dx: 2 * u * (geo.mx - geo.sx) + 2 * t * (geo.tx - geo.mx),
    dy: 2 * u * (geo.my - geo.sy) + 2 * t * (geo.ty - geo.my),
  };
}

function overlap(a, b) {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

const GAP = 3;
const SPOTS = [0.5, 0.42, 0.58, 0.34, 0.66, 0.27, 0.73];
const LOCK_W = 12;

// Puts every label on its own curve (so it is read as that curve's, as Kiali does; its halo
// hides the line under it) where its box (with its lock) meets no node, no node's name, no
// arrowhead and no label already put: along the curve from the middle outwards; then beside
// it, on the bow's outer side, then further out, then on the inner side; if every spot is
// taken, the one that covers least. Measured each update (≤ 60 edges: one layout).
function placeLabels(edges) {
  const w = map.clientWidth || 1000, h = map.clientHeight || 700;
  const taken = [];
  for (const g of nodeEls.values()) {
    for (const part of g.querySelectorAll(".shape, .badge, text.name, text.state")) {
      const b = part.getBBox();
      if (b.width > 0) taken.push({ x: b.x - GAP, y: b.y - GAP, w: b.width + 2 * GAP, h: b.height + 2 * GAP });
    }
  }
  const placed = [];
  for (const e of edges) {
    const geo = geometries.get(e.id);
    if (!geo) continue;
    // The arrowhead: 7 stroke widths long, ending at the tip.
    const sw = e.health === "failing" ? 3 : 2;
    const half = 3.5 * sw + GAP;
    const ax = geo.tx - geo.dir.x * 3.5 * sw, ay = geo.ty - geo.dir.y * 3.5 * sw;
    taken.push({ x: ax - half, y: ay - half, w: 2 * half, h: 2 * half });
    placed.push({ e, geo });
  }
  const boxes = [];
  for (const { e, geo } of placed) {
    const g = edgeEls.get(e.id);
    const label = g.querySelector("text.label");
    const lock = g.querySelector("g.lock");
    const b = label.getBBox();
    const tw = b.width, th = b.height;
    const top = b.y - Number(label.getAttribute("y") || 0);
    const bw = tw + (lock ? LOCK_W : 0), bh = Math.max(th, 12);
    let best = null;
    for (const [side, extras] of [[0, [0]], [1, [0, 16, 32]], [-1, [0, 16]]]) {
      for (const extra of extras) {
        for (const t of SPOTS) {
          const p = at(geo, t);
          const l = Math.hypot(p.dx, p.dy) || 1;
          const nx = (-p.dy / l) * side, ny = (p.dx / l) * side;
          const reach = side === 0 ? 0 : (bw / 2) * Math.abs(nx) + (bh / 2) * Math.abs(ny) + GAP + 2 + extra;
          const cx = p.x + nx * reach, cy = p.y + ny * reach;
          const box = { x: cx - bw / 2, y: cy - bh / 2, w: bw, h: bh };
          let cost = 0;
          for (const o of taken) cost += overlap(box, o);
          for (const o of boxes) cost += overlap(box, o);
          // Outside the map: as bad as covering something.
          cost += bw * bh - overlap(box, { x: 0, y: 0, w, h });
          if (!best || cost < best.cost) best = { cost, box };
          if (cost === 0) break;
        }
        if (best.cost === 0) break;
      }
      if (best.cost === 0) break;
    }
    boxes.push({ x: best.box.x - GAP, y: best.box.y - GAP, w: best.box.w + 2 * GAP, h: best.box.h + 2 * GAP });
    const textX = best.box.x + (lock ? LOCK_W : 0) + tw / 2;
    const textY = best.box.y + bh / 2 - th / 2 - top;
    set(label, "x", textX.toFixed(1)); set(label, "y", textY.toFixed(1));
    const backdrop = g.querySelector("rect.backdrop");
    set(backdrop, "x", (best.box.x - 1).toFixed(1)); set(backdrop, "y", (best.box.y - 1).toFixed(1));
    set(backdrop, "width", (best.box.w + 2).toFixed(1)); set(backdrop, "height", (best.box.h + 2).toFixed(1));
    if (lock) set(lock, "transform", `translate(${(best.box.x + 6).toFixed(1)},${(best.box.y + bh / 2 - 2).toFixed(1)})`);
  }
}

// A padlock drawn in SVG (an emoji needs a font the machine may not have).
function drawLock(parent) {
  const g = el("g", { class: "lock" }, parent);
  el("title", {}, g).textContent = "every call verified by a certificate (mTLS)";
  el("path", { class: "shackle", d: "M-3,-1 v-2.5 a3,3 0 0 1 6,0 v2.5" }, g);
  el("rect", { class: "body", x: -4.5, y: -1, width: 9, height: 7, rx: 1.2 }, g);
  return g;
}

function drawEdges(edges, moved, r, dense) {
  const seen = new Set();
  const ids = new Set(edges.map((e) => `${e.from}->${e.to}`));
  // Which edges have a reverse changes the curves even when no node moved.
  const key = [...ids].sort().join("|");
  if (key !== edgeKey) { edgeKey = key; moved = true; }
  for (const e of edges) {
    seen.add(e.id);
    let g = edgeEls.get(e.id);
    if (!g) {
      g = el("g", { class: "edge" }, edgesLayer);
      el("path", { class: "hit" }, g);
      el("path", { class: "line" }, g);
      // Behind the label: hides its own curve under it (the label sits on it).
      el("rect", { class: "backdrop", rx: 3 }, g);
      el("text", { class: "label", "text-anchor": "middle" }, g);
      el("title", {}, g);
      g.addEventListener("click", () => select({ type: "edge", id: e.id }));
      edgeEls.set(e.id, g);
      moved = true;
    }
    set(g, "class", `edge ${e.health}${selected && selected.id === e.id ? " selected" : ""}`);
    set(g, "data-id", e.id);
    set(g, "data-source", e.source);
    set(g, "data-destination", e.destination);
    set(g, "data-destination-version", e.destination_version);
    set(g, "data-health", e.health);
    set(g, "data-verified", e.verified);
    set(g, "data-cause", e.cause);
    // The tooltip says why an edge fails when a node on its path is down.
    text(g.querySelector("title"), `${e.source} → ${e.destination}: ${e.health}${e.cause ? `: ${e.cause}` : ""}`);
    const line = g.querySelector("path.line");
    set(line, "marker-end", `url(#arrow-${e.health})`);
    set(line, "style", `--marker: url(#arrow-${e.health})`);
    const label = g.querySelector("text.label");
    let lock = g.querySelector("g.lock");
    if (e.verified && !lock) { lock = drawLock(g); moved = true; }
    if (!e.verified && lock) { lock.remove(); lock = null; }
    if (moved) {
      const geo = geometry(e, r, ids.has(`${e.to}->${e.from}`));
      if (geo) {
        geometries.set(e.id, geo);
        set(line, "d", geo.d);
        set(g.querySelector("path.hit"), "d", geo.d);
        if (dense) {
          // Labels show one at a time on hover here: the middle of the curve will do, and
          // 870 edges are not measured. Left of the label: about 6.2 px a character at 11 px.
          set(label, "x", geo.lx.toFixed(1)); set(label, "y", (geo.ly - 4).toFixed(1));
          if (lock) set(lock, "transform", `translate(${(geo.lx - e.label.length * 3.1 - 9).toFixed(1)},${(geo.ly - 11).toFixed(1)})`);
        }
      } else {
        geometries.delete(e.id);
      }
    }
    text(label, e.label);
  }
  for (const [id, g] of edgeEls) if (!seen.has(id)) { g.remove(); edgeEls.delete(id); geometries.delete(id); }
  // Figures change every read, and with them the labels' widths: placed again each time.
  if (!dense) placeLabels(edges);
}

function apply(next) {
  const began = performance.now();
  graph = next;
  document.body.dataset.state = next.state;
  map.dataset.seq = next.seq;
  const hint = document.getElementById("hint");
  hint.hidden = !next.hint;
  text(hint, next.hint || "");
  const live = next.edges.filter((e) => e.requests > 0).length;
  text(document.getElementById("summary"),
    next.state === "not-running" ? "mesh not running"
      : `${next.nodes.length} nodes · ${next.edges.length} edges (${live} active in the last ${next.window_s.toFixed(1)} s)`);
  const dense = next.edges.length > DENSE_EDGES;
  map.classList.toggle("dense", dense);
  const moved = layout(next.nodes);
  drawNodes(next.nodes, moved);
  drawEdges(next.edges, moved, radius(next.nodes.length), dense);
  if (selected) showDetails(false);
  const took = performance.now() - began;
  stats.updates += 1;
  stats.lastUpdateMs = took;
  stats.totalUpdateMs += took;
  stats.maxUpdateMs = Math.max(stats.maxUpdateMs, took);
}

function fmt(v, digits, unit) {
  return v === null || v === undefined ? "-" : `${v.toFixed(digits)}${unit}`;
}

function select(what) {
  selected = what;
  for (const g of nodeEls.values()) g.classList.toggle("selected", what.type === "node" && g.dataset.id === what.id);
  for (const g of edgeEls.values()) g.classList.toggle("selected", what.type === "edge" && g.dataset.id === what.id);
  showDetails(true);
}

function row(name, value) {
  return `<tr><td>${name}</td><td>${value}</td></tr>`;
}

function escape(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

function showDetails(fetchTap) {
  if (!graph || !selected) return;
  const panel = document.getElementById("details");
  const table = document.getElementById("figures");
  let query;
  if (selected.type === "edge") {
    const e = graph.edges.find((x) => x.id === selected.id);
    if (!e) return;
    text(document.getElementById("details-title"), `${e.source} → ${e.destination}${e.destination_version ? " " + e.destination_version : ""}`);
    table.innerHTML = [
      row("requests/s", fmt(e.rps, 1, "")),
      row("success", fmt(e.success_rate === null ? null : e.success_rate * 100, 1, "%")),
      row("p50", fmt(e.p50_ms, 1, " ms")),
      row("p99", fmt(e.p99_ms, 1, " ms")),
      row("calls in window", e.requests),
      row("calls in total", e.total_requests),
      row("mTLS", e.verified ? "every call verified by a certificate" : fmt(e.mtls_share === null ? null : e.mtls_share * 100, 0, "% verified")),
      row("state", e.health),
      ...(e.cause ? [row("cause", escape(e.cause))] : []),
    ].join("");
    query = `source=${encodeURIComponent(e.source)}&destination=${encodeURIComponent(e.destination)}`;
  } else {
    const n = graph.nodes.find((x) => x.id === selected.id);
    if (!n) return;
    const into = graph.edges.filter((e) => e.to === n.id);
    const out = graph.edges.filter((e) => e.from === n.id);
    const rps = into.reduce((s, e) => s + e.rps, 0);
    const calls = into.reduce((s, e) => s + e.requests, 0);
    const ok = into.reduce((s, e) => s + (e.success_rate === null ? 0 : e.success_rate * e.requests), 0);
    text(document.getElementById("details-title"), n.version ? `${n.service} ${n.version}` : n.service);
    table.innerHTML = [
      row("kind", n.kind),
      row("health", escape(`${n.health || "up"}${n.health_detail ? `: ${n.health_detail}` : ""}`)),
      row("sidecar", n.reachable ? "read" : "unreachable"),
      row("requests/s in", fmt(rps, 1, "")),
      row("success in", calls ? fmt((ok / calls) * 100, 1, "%") : "-"),
      row("callers", escape(into.map((e) => e.source).join(", ") || "-")),
      row("callees", escape(out.map((e) => e.destination).join(", ") || "-")),
    ].join("");
    query = `service=${encodeURIComponent(n.service)}`;
  }
  panel.hidden = false;
  if (fetchTap) {
    const tap = document.getElementById("tap");
    tap.textContent = "…";
    fetch(`/api/tap?${query}`)
      .then((r) => r.json())
      .then((body) => {
        tap.textContent = body.lines && body.lines.length ? body.lines.join("\n") : body.hint || "no calls logged yet";
      })
      .catch((err) => { tap.textContent = `cannot read the tap: ${err}`; });
    // The edge's (or node's) recent traces, each a link to the trace backend's own page.
    const traces = document.getElementById("traces");
    traces.innerHTML = "<li>…</li>";
    fetch(`/api/traces?${query}`)
      .then((r) => r.json())
      .then((body) => {
        traces.innerHTML = body.traces && body.traces.length
          ? body.traces.map((t) => `<li><a href="${escape(t.url)}" target="_blank" rel="noopener">${escape(t.trace_id.slice(0, 16))}</a> ${t.status === null ? "-" : t.status} ${fmt(t.duration_ms, 1, " ms")}</li>`).join("")
          : `<li>${escape(body.hint || "no traces of these calls yet")}</li>`;
      })
      .catch((err) => { traces.innerHTML = `<li>${escape(`cannot read the traces: ${err}`)}</li>`; });
  }
}

document.getElementById("close").addEventListener("click", () => {
  selected = null;
  document.getElementById("details").hidden = true;
  for (const g of [...nodeEls.values(), ...edgeEls.values()]) g.classList.remove("selected");
});

window.addEventListener("resize", () => { if (graph) apply(graph); });

async function refresh() {
  try {
    const response = await fetch("/api/graph", { cache: "no-store" });
    const next = await response.json();
    // Asked twice a read: the same graph again changes nothing.
    if (!graph || next.seq !== graph.seq || document.body.dataset.state === "disconnected") apply(next);
  } catch (err) {
    stats.errors += 1;
    document.body.dataset.state = "disconnected";
    const hint = document.getElementById("hint");
    hint.hidden = false;
    text(hint, `the dashboard server does not answer (${err.message}): is deployer dashboard still running?`);
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
