// A small SVG line chart of one series (values in ms), oldest to newest:
// points of failed calls in red, each point's details in its tooltip.

import { duration, h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 560;
const HEIGHT = 170;
const PAD = { left: 58, right: 12, top: 12, bottom: 22 };

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children) el.append(child);
  return el;
}

export function lineChart({ title, points, name }) {
  const card = h("div", { class: "card chart-card", "data-chart": name },
    h("div", { class: "label" }, `${title} · last ${points.length} calls`));
  if (!points.length) {
    card.append(h("p", { class: "muted" }, "No calls yet."));
    return card;
  }
  const values = points.map((p) => Math.max(0, p.value));
  const top = niceCeiling(Math.max(...values, 1));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (points.length === 1 ? plotW / 2 : (i * plotW) / (points.length - 1));
  const y = (v) => PAD.top + plotH - (Math.max(0, v) / top) * plotH;

  const chart = svg("svg", {
    class: "chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img",
    "aria-label": `${title} of the last ${points.length} calls`,
  });
  for (const fraction of [0, 0.5, 1]) {
    const level = PAD.top + plotH * (1 - fraction);
    chart.append(svg("line", { class: "axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: level, y2: level }));
    const label = svg("text", { x: PAD.left - 6, y: level + 4, "text-anchor": "end" });
    label.textContent = duration(top * fraction);
    chart.append(label);
  }
  const oldest = svg("text", { x: PAD.left, y: HEIGHT - 6 });
  oldest.textContent = "older";
  const newest = svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 6, "text-anchor": "end" });
  newest.textContent = "newest";
  chart.append(oldest, newest);
  chart.append(svg("polyline", {
    class: "line", points: points.map((p, i) => `${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(" "),
  }));
  points.forEach((p, i) => {
    const tip = svg("title");
    tip.textContent = `${p.label}: ${duration(p.value)}`;
    chart.append(svg("circle", {
      class: p.failed ? "point failed" : "point", cx: x(i).toFixed(1), cy: y(p.value).toFixed(1), r: 2.5,
    }, tip));
  });
  card.append(chart);
  return card;
}

// 1, 2 or 5 times a power of ten, at least `value`: round axis labels.
function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}
