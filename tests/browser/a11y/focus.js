// Runs in the page: "" when the focused element shows an outline or a focus ring.
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return "nothing focused";
  const s = getComputedStyle(el);
  const outline = s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0;
  const ring = s.boxShadow && s.boxShadow !== "none";
  return outline || ring ? "" : "no visible focus on " + el.tagName.toLowerCase() + (el.id ? "#" + el.id : "");
}
