// The day by interval as an SVG drawn here (no chart library): offered and answered as bars,
// service level as a line on a 0-100 % scale.
const NS = "http://www.w3.org/2000/svg";

function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

export function dayChart(rows, { width = 640, height = 220 } = {}) {
  const pad = { l: 34, r: 38, t: 10, b: 26 };
  const w = width - pad.l - pad.r, hgt = height - pad.t - pad.b;
  const shown = rows.slice(-48); // the last 12 hours at most
  const max = Math.max(4, ...shown.map((r) => r.offered));
  const n = Math.max(shown.length, 8);
  const bw = w / n;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Offered, answered and service level by 15 minutes; ${shown.reduce((a, r) => a + r.offered, 0)} offered in view` });
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + hgt - (hgt * i) / 4;
    svg.append(el("line", { x1: pad.l, x2: pad.l + w, y1: y, y2: y, stroke: "#e9ecef" }));
    svg.append(el("text", { x: pad.l - 6, y: y + 4, "text-anchor": "end", "font-size": 10, fill: "#5b6478" }, String(Math.round((max * i) / 4))));
    svg.append(el("text", { x: pad.l + w + 6, y: y + 4, "font-size": 10, fill: "#237a35" }, `${25 * i}%`));
  }
  const pts = [];
  shown.forEach((r, i) => {
    const x = pad.l + i * bw;
    const ho = (hgt * r.offered) / max, ha = (hgt * r.answered) / max;
    const g = el("g", {});
    g.append(el("title", {}, `${new Date(r.start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}: offered ${r.offered}, answered ${r.answered}, abandoned ${r.abandoned}` +
      (r.service_level === null ? "" : `, service level ${Math.round(r.service_level * 100)}%`)));
    g.append(el("rect", { x: x + bw * 0.12, y: pad.t + hgt - ho, width: bw * 0.76, height: ho, fill: "#bac8ff", rx: 2 }));
    g.append(el("rect", { x: x + bw * 0.3, y: pad.t + hgt - ha, width: bw * 0.4, height: ha, fill: "#4c6ef5", rx: 2 }));
    svg.append(g);
    if (r.service_level !== null) pts.push(`${x + bw / 2},${pad.t + hgt - hgt * r.service_level}`);
    const every = shown.length > 24 ? 8 : 4; // a label every two hours (one with few bars)
    if (i % every === 0) svg.append(el("text", { x: x + 2, y: height - 8, "font-size": 10, fill: "#5b6478" },
      new Date(r.start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" })));
  });
  if (pts.length > 1) svg.append(el("polyline", { points: pts.join(" "), fill: "none", stroke: "#237a35", "stroke-width": 2.5 }));
  for (const p of pts) { const [cx, cy] = p.split(","); svg.append(el("circle", { cx, cy, r: 3, fill: "#237a35" })); }
  svg.append(el("line", { x1: pad.l, x2: pad.l + w, y1: pad.t + hgt, y2: pad.t + hgt, stroke: "#adb5bd" }));
  return svg;
}
