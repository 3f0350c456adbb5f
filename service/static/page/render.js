// Draws a gate map (gatemap.js) as one SVG: the source tensors on the left, the target's on
// the right, every tensor to scale as its grid of blocks, one colour per canonical gate, a
// texture per part, and a line from each source block to where it lands.

import { GATE_NAMES, PART_NAMES } from "./gatemap.js";

const SVG = "http://www.w3.org/2000/svg";
const COLUMN = 300; // width of one side, in SVG units
const GAP = 170; // room for the lines between the sides
const MAX_TALL = 420; // the tallest tensor's height at most
const MAX_SIDE = 760; // a side's tensors together about this tall at most
const MIN_THICK = 14; // a vector is drawn at least this thick
const TITLE = 30; // room above a tensor for its name and shape
const SPACING = 22; // between two tensors
const NAME_CHARS = 46; // a tensor name's characters that fit above it

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Rows and columns a tensor occupies when drawn: vectors follow the side's gate axis. */
function drawnShape(tensor, gateAxis) {
  if (tensor.shape.length === 2) return tensor.shape;
  return gateAxis === 0 ? [tensor.shape[0], 1] : [1, tensor.shape[0]];
}

/** A block's rectangle in the tensor's drawn coordinates (rows, columns). */
function blockSpan(block, tensor, gateAxis) {
  if (tensor.shape.length === 2) return block.index;
  const [start, stop] = block.index[0];
  return gateAxis === 0 ? [[start, stop], [0, 1]] : [[0, 1], [start, stop]];
}

/** The rows one side draws, all tensors together (vectors along the gate axis count their length). */
function drawnRows(tensors) {
  const gateAxis = sideGateAxis(tensors);
  return tensors.reduce((sum, t) => sum + (t.shape.length === 2 ? t.shape[0] : gateAxis === 0 ? t.shape[0] : 1), 0);
}

function sideGateAxis(tensors) {
  const core = tensors.find((t) => t.group === "core");
  return core ? core.gate_axis : 1;
}

function patterns() {
  const defs = el("defs");
  const add = (id, body) => {
    const p = el("pattern", { id, patternUnits: "userSpaceOnUse", width: 6, height: 6 });
    body.forEach((node) => p.appendChild(node));
    defs.appendChild(p);
  };
  const stroke = { stroke: "#000", "stroke-opacity": 0.45, "stroke-width": 1.2 };
  add("part-W_h", [el("path", { d: "M0,6 L6,0", ...stroke })]);
  add("part-b_x", [el("circle", { cx: 3, cy: 3, r: 1.1, fill: "#000", "fill-opacity": 0.5 })]);
  add("part-b_h", [el("circle", { cx: 1.5, cy: 1.5, r: 1, fill: "#000", "fill-opacity": 0.5 }), el("circle", { cx: 4.5, cy: 4.5, r: 1, fill: "#000", "fill-opacity": 0.5 })]);
  add("part-p_", [el("path", { d: "M0,3 L6,3 M3,0 L3,6", ...stroke })]);
  add("part-zeros", [el("path", { d: "M0,0 L6,6 M6,0 L0,6", stroke: "#555", "stroke-width": 0.8 })]);
  const arrow = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" });
  arrow.appendChild(el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#333" }));
  defs.appendChild(arrow);
  return defs;
}

/** A short human description of a block, for its accessible name and the detail panel. */
export function describeBlock(block) {
  const gate = block.gate ? `gate ${block.letter} (${GATE_NAMES[block.gate]}, canonical ${block.gate})` : "ungated";
  return `${block.slice}, shape [${block.shape.join(", ")}]: ${PART_NAMES[block.part]}, ${gate}`;
}

/** A tensor name that fits its column: the end of a long one (the full name is its tooltip). */
function shortened(name) {
  return name.length > NAME_CHARS ? "…" + name.slice(-(NAME_CHARS - 1)) : name;
}

/** Lay out one side; returns its drawn tensors with block rectangles in SVG units. */
function placeSide(tensors, x, scale, y0) {
  const gateAxis = sideGateAxis(tensors);
  let y = y0;
  return tensors.map((tensor) => {
    const [rows, cols] = drawnShape(tensor, gateAxis);
    const sy = rows === 1 && tensor.shape.length === 1 ? Math.max(scale, MIN_THICK) : scale;
    const sx = cols === 1 && tensor.shape.length === 1 ? Math.max(scale, MIN_THICK) : scale;
    const top = y + TITLE;
    const rects = tensor.blocks.map((block) => {
      const [[r0, r1], [c0, c1]] = blockSpan(block, tensor, gateAxis);
      return { x: x + c0 * sx, y: top + r0 * sy, w: Math.max((c1 - c0) * sx, 1), h: Math.max((r1 - r0) * sy, 1) };
    });
    y = top + rows * sy + SPACING;
    return { tensor, x, y: top, w: cols * sx, h: rows * sy, rects, bottom: y };
  });
}

/**
 * Draw `map` into `host` (replacing what it held). `onFocus(side, ti, bi)` is called when a
 * block gets the pointer or the keyboard focus.
 */
export function renderGateMap(host, map, labels, onFocus) {
  const maxCols = Math.max(1, ...[...map.source, ...map.target].map((t) => (t.shape.length === 2 ? t.shape[1] : 1)));
  const maxRows = Math.max(1, ...[...map.source, ...map.target].map((t) => (t.shape.length === 2 ? t.shape[0] : 1)));
  const tallest = Math.max(...[map.source, map.target].map((side) => drawnRows(side)));
  const scale = Math.max(0.05, Math.min(18, COLUMN / maxCols, MAX_TALL / maxRows, (MAX_SIDE - TITLE * 6) / tallest));
  const sides = {
    source: placeSide(map.source, 10, scale, 24),
    target: placeSide(map.target, 10 + COLUMN + GAP, scale, 24),
  };
  const height = Math.max(120, ...Object.values(sides).flat().map((d) => d.bottom)) + 10;
  const width = 10 + COLUMN + GAP + COLUMN + 10;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "gatemap-svg", role: "group", "aria-label": labels.title });
  svg.appendChild(patterns());
  svg.appendChild(el("text", { x: 10, y: 14, class: "side-title" }, labels.source));
  svg.appendChild(el("text", { x: 10 + COLUMN + GAP, y: 14, class: "side-title" }, labels.target));
  const lines = el("g", { class: "links" });
  svg.appendChild(lines);
  const nodes = { source: [], target: [] };
  for (const [side, drawn] of Object.entries(sides)) {
    drawn.forEach((d, ti) => {
      const group = el("g", {
        class: `tensor tensor-${d.tensor.group}`,
        "data-side": side,
        "data-tensor": d.tensor.name,
        "data-role": d.tensor.role,
        "data-shape": JSON.stringify(d.tensor.shape),
      });
      const name = el("text", { x: d.x, y: d.y - 16, class: "tensor-name" }, shortened(d.tensor.name));
      name.appendChild(el("title", {}, d.tensor.name));
      group.appendChild(name);
      group.appendChild(el("text", { x: d.x, y: d.y - 4, class: "tensor-shape" }, `[${d.tensor.shape.join(", ")}]`));
      nodes[side][ti] = d.tensor.blocks.map((block, bi) => {
        const r = d.rects[bi];
        const g = el("g", {
          class: `block gate-${block.gate || "none"} part-${block.part}${block.zeros ? " zeros" : ""}`,
          tabindex: 0,
          role: "img",
          "aria-label": describeBlock(block) + (block.zeros ? ", zeros" : "") + (block.folded ? `, ${block.folded}` : ""),
          "data-side": side,
          "data-block": block.name,
          "data-letter": block.letter,
          "data-slice": block.slice,
          "data-shape": JSON.stringify(block.shape),
        });
        g.appendChild(el("rect", { x: r.x, y: r.y, width: r.w, height: r.h, class: "fill" }));
        if (block.part !== "W_x" && block.part !== "W_proj") {
          g.appendChild(el("rect", { x: r.x, y: r.y, width: r.w, height: r.h, fill: `url(#part-${block.part})` }));
        }
        if (block.zeros) g.appendChild(el("rect", { x: r.x, y: r.y, width: r.w, height: r.h, fill: "url(#part-zeros)" }));
        g.appendChild(el("rect", { x: r.x, y: r.y, width: r.w, height: r.h, class: "outline" }));
        if (r.w >= 11 && r.h >= 11) {
          const size = Math.min(14, r.h - 1, r.w);
          g.appendChild(el("text", { x: r.x + r.w / 2, y: r.y + r.h / 2, class: "letter", "font-size": size }, block.letter || "P"));
        }
        if (block.folded) g.appendChild(el("text", { x: r.x + 1, y: r.y + r.h + 9, class: "fold" }, block.foldMark));
        g.addEventListener("mouseenter", () => onFocus(side, ti, bi));
        g.addEventListener("focus", () => onFocus(side, ti, bi));
        group.appendChild(g);
        return { g, r };
      });
      svg.appendChild(group);
    });
  }
  map.links.forEach((link, k) => {
    const from = nodes.source[link.from[0]][link.from[1]].r;
    const to = nodes.target[link.to[0]][link.to[1]].r;
    const x1 = 10 + COLUMN + 4;
    const x2 = 10 + COLUMN + GAP - 4;
    const y1 = from.y + from.h / 2;
    const y2 = to.y + to.h / 2;
    const path = el("path", {
      d: `M${from.x + from.w},${y1} L${x1},${y1} C${x1 + 60},${y1} ${x2 - 60},${y2} ${x2},${y2} L${to.x},${y2}`,
      class: `link link-${link.kind}${link.transposed ? " transposed" : ""} gate-line-${map.source[link.from[0]].blocks[link.from[1]].gate || "none"}`,
      "marker-end": "url(#arrow)",
      "data-link": k,
    });
    lines.appendChild(path);
    const mark = link.reinterpreted ? "≋" : link.kind === "sum" ? "+" : link.transposed ? "ᵀ" : "";
    if (mark) {
      const t = 0.5;
      const mx = x1 + (x2 - x1) * t;
      const my = y1 + (y2 - y1) * t;
      lines.appendChild(el("text", { x: mx, y: my - 2, class: `link-mark mark-${link.kind}` }, mark));
    }
    nodes.source[link.from[0]][link.from[1]].g.dataset.links = `${nodes.source[link.from[0]][link.from[1]].g.dataset.links || ""} ${k}`;
    nodes.target[link.to[0]][link.to[1]].g.dataset.links = `${nodes.target[link.to[0]][link.to[1]].g.dataset.links || ""} ${k}`;
  });
  host.replaceChildren(svg);
  return svg;
}

/** Emphasise the links of one block (and dim the rest). */
export function highlight(svg, blockNode) {
  const wanted = new Set((blockNode?.dataset.links || "").trim().split(/\s+/).filter(Boolean));
  svg.querySelectorAll(".link").forEach((path) => path.classList.toggle("active", wanted.has(path.dataset.link)));
  svg.classList.toggle("focused", wanted.size > 0);
  svg.querySelectorAll(".block").forEach((node) => node.classList.toggle("current", node === blockNode));
}
