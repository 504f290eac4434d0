// Guided capture: the views a return's category asks for (the return's required_views),
// walked through one at a time. Each view has a prompt and a light outline drawing of
// how to frame the item; the page fills the views in order and sends each photo with the
// view it shows (the upload's "views" field). Pure helpers: no network, no page state.

const SVG_NS = "http://www.w3.org/2000/svg";

// Outline keyword -> SVG shapes in a 120 x 90 box: [tag, attributes].
const OUTLINES = {
  phone_front: [
    ["rect", { x: 42, y: 6, width: 36, height: 78, rx: 6 }],
    ["rect", { x: 46, y: 14, width: 28, height: 60, rx: 2, class: "outline-fill" }],
    ["line", { x1: 55, y1: 10, x2: 65, y2: 10 }],
  ],
  phone_back: [
    ["rect", { x: 42, y: 6, width: 36, height: 78, rx: 6 }],
    ["rect", { x: 47, y: 11, width: 14, height: 18, rx: 4 }],
    ["circle", { cx: 54, cy: 20, r: 4 }],
  ],
  box: [
    ["path", { d: "M22 30 L60 16 L98 30 L98 72 L60 86 L22 72 Z" }],
    ["path", { d: "M22 30 L60 44 L98 30 M60 44 L60 86" }],
  ],
  shoe_side: [
    ["path", { d: "M12 66 L14 40 Q30 36 44 46 Q62 56 92 56 Q108 58 108 68 L108 74 L12 74 Z" }],
    ["line", { x1: 12, y1: 68, x2: 108, y2: 68 }],
  ],
  shoe_sole: [
    ["path", { d: "M40 8 Q66 4 70 30 Q72 50 66 70 Q60 86 46 84 Q32 80 34 56 Q36 34 30 22 Q30 10 40 8 Z" }],
    ["line", { x1: 40, y1: 52, x2: 62, y2: 52 }],
  ],
  generic: [
    ["path", { d: "M14 24 L14 10 L28 10 M92 10 L106 10 L106 24 M106 66 L106 80 L92 80 M28 80 L14 80 L14 66" }],
    ["rect", { x: 34, y: 24, width: 52, height: 42, rx: 4 }],
  ],
};

/** An inline SVG outline for a view (unknown keywords draw the generic frame). */
export function outlineSvg(keyword) {
  const shapes = OUTLINES[keyword] || OUTLINES.generic;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 120 90");
  svg.setAttribute("class", "outline");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.dataset.outline = OUTLINES[keyword] ? keyword : "generic";
  for (const [tag, attrs] of shapes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    svg.append(node);
  }
  return svg;
}

/**
 * Which required views are done (a stored photo of it passed the quality gate), which
 * are chosen but not sent, and which still need a photo, in the policy's order.
 * `uploaded`: the server's photos ({view, quality: {passed}}); `pending`: [{view}].
 */
export function viewStatus(views, uploaded, pending) {
  const done = new Set(uploaded.filter((p) => p.view && p.quality && p.quality.passed).map((p) => p.view));
  const chosen = new Set(pending.filter((p) => p.view).map((p) => p.view));
  return views.map((v) => ({
    ...v,
    status: done.has(v.name) ? "done" : chosen.has(v.name) ? "chosen" : "needed",
  }));
}

/** The views the next chosen files are for, in order (the ones still needed). */
export function nextViews(views, uploaded, pending) {
  return viewStatus(views, uploaded, pending).filter((v) => v.status === "needed");
}
