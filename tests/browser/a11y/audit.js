// Runs in the page (Playwright page.evaluate); returns a list of problems, each naming
// the element. See tests/browser/test_accessibility.py.
() => {
  const problems = [];
  const visible = (el) => {
    const s = getComputedStyle(el);
    if (s.visibility === "hidden" || s.display === "none") return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const describe = (el) => {
    let d = el.tagName.toLowerCase();
    if (el.id) d += "#" + el.id;
    if (el.name) d += "[name=" + el.name + "]";
    if (el.className && typeof el.className === "string") d += "." + el.className.trim().split(/\s+/).join(".");
    const text = (el.textContent || "").trim().slice(0, 30);
    return text ? d + ' "' + text + '"' : d;
  };
  const nameOf = (el) => {
    const parts = [];
    if (el.getAttribute("aria-label")) parts.push(el.getAttribute("aria-label"));
    const by = el.getAttribute("aria-labelledby");
    if (by) for (const id of by.split(/\s+/)) {
      const ref = document.getElementById(id);
      if (ref) parts.push(ref.textContent);
    }
    if (el.labels) for (const l of el.labels) parts.push(l.textContent);
    if (el.getAttribute("title")) parts.push(el.getAttribute("title"));
    if (["BUTTON", "A", "SUMMARY"].includes(el.tagName)) parts.push(el.textContent);
    if (el.tagName === "INPUT" && ["submit", "button"].includes(el.type)) parts.push(el.value);
    return parts.join(" ").trim();
  };
  if (!document.documentElement.lang) problems.push("html has no lang attribute");
  if (document.querySelectorAll("main, [role=main]").length !== 1) problems.push("not exactly one main landmark");
  if (!document.querySelector("h1")) problems.push("no h1 heading");
  for (const el of document.querySelectorAll("input, select, textarea, button, a[href], summary")) {
    if (el.type === "hidden" || !visible(el)) continue;
    if (!nameOf(el)) problems.push("no accessible name: " + describe(el));
  }
  for (const img of document.querySelectorAll("img")) {
    if (!img.hasAttribute("alt")) problems.push("image without alt: " + describe(img));
  }
  const rgba = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const blend = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const background = (el) => {
    // Compose the background colours from the element up to the root (images ignored).
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) bg = blend(layers[i], bg);
    return bg;
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!el || seen.has(el) || !node.textContent.trim() || !visible(el)) continue;
    if (el.closest("[aria-hidden=true], svg, option")) continue;
    seen.add(el);
    const s = getComputedStyle(el);
    if (el.disabled || el.closest("[disabled], [aria-disabled=true]")) continue;  // WCAG: exempt
    const fg0 = rgba(s.color);
    if (!fg0) continue;
    const bg = background(el);
    const fg = blend([fg0[0], fg0[1], fg0[2], fg0[3] * Number(s.opacity || 1)], bg);
    const [l1, l2] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const size = parseFloat(s.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
    const need = large ? 3 : 4.5;
    if (ratio < need - 0.01) {
      problems.push("contrast " + ratio.toFixed(2) + " < " + need + ": " + describe(el) + " (" + s.color + " on rgb(" + bg.slice(0, 3).map(Math.round).join(",") + "))");
    }
  }
  return problems;
}
