// The mesh map: fetches /api/graph every second and updates the SVG in place (no reload, no
// library). Nodes sit on an ellipse in the order the server gives them (the gateway first, on
// the left), so the same mesh is always drawn the same way; edges are curves, so a→b and b→a
// stay apart. Everything shown is decided by the server (dashboard/graph.rs): colours come
// from each edge's `health`, the label is the server's `label`, the lock its `verified`.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 1000;
const DENSE_EDGES = 60;
const map = document.getElementById("map");
const edgesLayer = document.getElementById("edges");
const nodesLayer = document.getElementById("nodes");
const nodeEls = new Map();
const edgeEls = new Map();
let positions = new Map();
let layoutKey = "";
let size = "";
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
  const rx = Math.max(60, w / 2 - 110), ry = Math.max(60, h / 2 - 60);
  positions = new Map();
  nodes.forEach((n, i) => {
    // From the left (the gateway), clockwise.
    const a = Math.PI + (2 * Math.PI * i) / Math.max(1, nodes.length);
    positions.set(n.id, { x: cx + rx * Math.cos(a), y: cy + ry * Math.sin(a) });
  });
  return true;
}

function drawNodes(nodes, moved) {
  const r = radius(nodes.length);
  const seen = new Set();
  for (const n of nodes) {
    seen.add(n.id);
    let g = nodeEls.get(n.id);
    if (!g) {
      g = el("g", { class: "node" }, nodesLayer);
      if (n.kind === "gateway") el("rect", {}, g);
      else el("circle", {}, g);
      el("text", { class: "name" }, g);
      g.addEventListener("click", () => select({ type: "node", id: n.id }));
      nodeEls.set(n.id, g);
      moved = true;
    }
    g.setAttribute("class", `node ${n.kind}${n.reachable ? "" : " unreachable"}${selected && selected.id === n.id ? " selected" : ""}`);
    set(g, "data-id", n.id);
    set(g, "data-service", n.service);
    set(g, "data-version", n.version);
    set(g, "data-kind", n.kind);
    set(g, "data-reachable", n.reachable);
    let mark = g.querySelector("text.mark");
    if (!n.reachable && !mark) mark = el("text", { class: "mark" }, g);
    if (n.reachable && mark) { mark.remove(); mark = null; }
    if (moved) {
      const p = positions.get(n.id);
      const shape = g.firstChild;
      if (shape.tagName === "rect") {
        set(shape, "x", p.x - r * 1.6); set(shape, "y", p.y - r); set(shape, "width", r * 3.2); set(shape, "height", r * 2); set(shape, "rx", 6);
      } else {
        set(shape, "cx", p.x); set(shape, "cy", p.y); set(shape, "r", r);
      }
      const name = g.querySelector("text.name");
      set(name, "x", p.x); set(name, "y", p.y + r + 14);
      if (mark) { set(mark, "x", p.x); set(mark, "y", p.y + 4); }
    }
    // The gateway's calls carry its service account's name; the map calls it what it is.
    text(g.querySelector("text.name"), n.kind === "gateway" ? "ingress gateway" : n.version ? `${n.service} ${n.version}` : n.service);
    if (mark) text(mark, "unreachable");
  }
  for (const [id, g] of nodeEls) if (!seen.has(id)) { g.remove(); nodeEls.delete(id); }
}

function geometry(e, r) {
  const a = positions.get(e.from), b = positions.get(e.to);
  if (!a || !b) return null;
  const dx = b.x - a.x, dy = b.y - a.y;
  const len = Math.hypot(dx, dy) || 1;
  const ux = dx / len, uy = dy / len;
  // Bend to the right of the direction of travel: a→b and b→a get opposite bows.
  const bow = Math.min(60, len * 0.15);
  const mx = (a.x + b.x) / 2 - uy * bow, my = (a.y + b.y) / 2 + ux * bow;
  const sx = a.x + ux * r, sy = a.y + uy * r, tx = b.x - ux * (r + 2), ty = b.y - uy * (r + 2);
  // The curve's midpoint (t = 0.5) carries the label.
  const lx = 0.25 * sx + 0.5 * mx + 0.25 * tx, ly = 0.25 * sy + 0.5 * my + 0.25 * ty;
  return { d: `M${sx.toFixed(1)},${sy.toFixed(1)} Q${mx.toFixed(1)},${my.toFixed(1)} ${tx.toFixed(1)},${ty.toFixed(1)}`, lx, ly };
}

// A padlock drawn in SVG (an emoji needs a font the machine may not have).
function drawLock(parent) {
  const g = el("g", { class: "lock" }, parent);
  el("title", {}, g).textContent = "every call verified by a certificate (mTLS)";
  el("path", { class: "shackle", d: "M-3,-1 v-2.5 a3,3 0 0 1 6,0 v2.5" }, g);
  el("rect", { class: "body", x: -4.5, y: -1, width: 9, height: 7, rx: 1.2 }, g);
  return g;
}

function drawEdges(edges, moved, r) {
  const seen = new Set();
  for (const e of edges) {
    seen.add(e.id);
    let g = edgeEls.get(e.id);
    if (!g) {
      g = el("g", { class: "edge" }, edgesLayer);
      el("path", { class: "hit" }, g);
      el("path", { class: "line" }, g);
      el("text", { class: "label", "text-anchor": "middle" }, g);
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
    const line = g.querySelector("path.line");
    set(line, "marker-end", `url(#arrow-${e.health})`);
    set(line, "style", `--marker: url(#arrow-${e.health})`);
    const label = g.querySelector("text.label");
    let lock = g.querySelector("g.lock");
    if (e.verified && !lock) { lock = drawLock(g); moved = true; }
    if (!e.verified && lock) { lock.remove(); lock = null; }
    if (moved) {
      const geo = geometry(e, r);
      if (geo) {
        set(line, "d", geo.d);
        set(g.querySelector("path.hit"), "d", geo.d);
        set(label, "x", geo.lx.toFixed(1)); set(label, "y", (geo.ly - 4).toFixed(1));
        // Left of the label: about 6.2 px a character at 11 px (measuring would force a layout
        // per edge).
        if (lock) set(lock, "transform", `translate(${(geo.lx - e.label.length * 3.1 - 9).toFixed(1)},${(geo.ly - 11).toFixed(1)})`);
      }
    }
    text(label, e.label);
  }
  for (const [id, g] of edgeEls) if (!seen.has(id)) { g.remove(); edgeEls.delete(id); }
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
  map.classList.toggle("dense", next.edges.length > DENSE_EDGES);
  const moved = layout(next.nodes);
  drawNodes(next.nodes, moved);
  drawEdges(next.edges, moved, radius(next.nodes.length));
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
    apply(await response.json());
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
