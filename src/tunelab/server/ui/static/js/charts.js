// Line charts as SVG, drawn here (no chart library): series of [x, y] points on shared axes.
import { el, fill } from "./api.js";

const NS = "http://www.w3.org/2000/svg";
const M = { left: 52, right: 14, top: 12, bottom: 36 };

function svg(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// About five round tick values covering [lo, hi]; whole numbers only when `integer` (steps: no 2.5).
export function ticks(lo, hi, count = 5, integer = false) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw && (!integer || Number.isInteger(s))) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function label(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.01 || a >= 1e5)) return v.toExponential(1);
  return String(+v.toFixed(3));
}

// series: [{name, points: [[x, y], ...]}]; opts: {xLabel, xMin, xMax, yMin, yMax, empty}.
export function lineChart(target, series, opts = {}) {
  // Drawn at the width it is shown at, so that its text stays readable on a phone.
  const node = typeof target === "string" ? document.getElementById(target) : target;
  const W = Math.max(280, Math.round(node.clientWidth || 560));
  const H = Math.round(Math.min(260, Math.max(190, W * 0.46)));
  const drawn = series.filter((s) => s.points.length);
  if (!drawn.length) {
    fill(target, el("p", { class: "muted" }, opts.empty || "No data yet."));
    return;
  }
  const xs = drawn.flatMap((s) => s.points.map((p) => p[0]));
  const ys = drawn.flatMap((s) => s.points.map((p) => p[1]));
  let x0 = Math.min(opts.xMin ?? Infinity, ...xs), x1 = Math.max(opts.xMax ?? -Infinity, ...xs);
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  let y0 = opts.yMin ?? Math.min(...ys), y1 = opts.yMax ?? Math.max(...ys);
  // One value (a 1-epoch job): a band of 10 % around it, so the axis reads on the value's own scale.
  if (y1 === y0) { const d = Math.abs(y0) * 0.1 || 0.5; y0 -= d; y1 += d; }
  const pad = (y1 - y0) * 0.05;
  if (opts.yMin === undefined) y0 -= pad;
  if (opts.yMax === undefined) y1 += pad;
  const sx = (x) => M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right);
  const sy = (y) => H - M.bottom - ((y - y0) / (y1 - y0)) * (H - M.top - M.bottom);

  const summary = drawn.map((s) => `${s.name}: ${s.points.length} points, last ${label(s.points[s.points.length - 1][1])}`).join("; ");
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": (opts.title || "Chart") + ". " + summary });
  for (const t of ticks(y0, y1)) {
    if (t < y0 || t > y1) continue;
    root.append(svg("line", { class: "grid", x1: M.left, x2: W - M.right, y1: sy(t), y2: sy(t) }));
    root.append(svg("text", { x: M.left - 6, y: sy(t) + 4, "text-anchor": "end" }, label(t)));
  }
  for (const t of ticks(x0, x1, 6, xs.every(Number.isInteger))) {
    if (t < x0 || t > x1) continue;
    root.append(svg("line", { class: "axis", x1: sx(t), x2: sx(t), y1: H - M.bottom, y2: H - M.bottom + 4 }));
    root.append(svg("text", { x: sx(t), y: H - M.bottom + 16, "text-anchor": "middle" }, label(t)));
  }
  root.append(svg("line", { class: "axis", x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }));
  root.append(svg("line", { class: "axis", x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom }));
  root.append(svg("text", { x: (M.left + W - M.right) / 2, y: H - 4, "text-anchor": "middle" }, opts.xLabel || "step"));
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => (j ? "L" : "M") + sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1)).join(" ");
    const path = svg("path", { class: `series s${i}`, d, "data-series": s.name, "data-points": s.points.length });
    path.append(svg("title", {}, s.name));
    root.append(path);
    if (s.points.length <= 40) {
      for (const p of s.points) {
        const dot = svg("circle", { class: `s${i}`, cx: sx(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: 3 });
        dot.append(svg("title", {}, `${s.name} at ${label(p[0])}: ${label(p[1])}`));
        root.append(dot);
      }
    }
  });
  const legend = el("div", { class: "legend" },
    series.map((s, i) => (s.points.length ? el("span", {}, el("i", { class: `s${i}` }), s.name) : null)));
  fill(target, root, legend);
}
