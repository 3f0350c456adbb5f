// The gate map's model: where each canonical gate block sits in a stored tensor, and where
// it lands in a target convention. Pure functions of GET /conventions and POST /inspect
// data; rendering lives in render.js.
//
// Shapes and names follow rnnbridge.engine.layout: a stored tensor is a grid of blocks,
// one per gate along its gate axis (each H long; P for the ungated projection) and one per
// part along the other axis (W_x: I wide, W_h: R wide, vectors: 1). A block is named
// part + canonical gate (W_xf, b_hn, p_i, W_proj) and relates to its canonical array by a
// transform: N as it is, T transposed, R its C-order memory read with the transposed shape.

/** Canonical gate letters per cell. */
export const GATES = { lstm: "ifgo", gru: "rzn" };

/** Canonical shape of every part, in symbols (H units, I input, R recurrent, P projection). */
const PART_SHAPES = { W_x: ["H", "I"], W_h: ["H", "R"], b_x: ["H"], b_h: ["H"], p_: ["H"], W_proj: ["P", "H"] };

/** What each part is, for people. */
export const PART_NAMES = {
  W_x: "input weights",
  W_h: "recurrent weights",
  b_x: "input bias",
  b_h: "recurrent bias",
  p_: "peephole",
  W_proj: "projection",
};

/** What each canonical gate is, for people. */
export const GATE_NAMES = {
  i: "input gate",
  f: "forget gate",
  g: "cell candidate",
  o: "output gate",
  r: "reset gate",
  z: "update gate",
  n: "candidate",
  "": "projection",
};

const isVector = (layout) => PART_SHAPES[layout.parts[0]].length === 1;
const ndim = (layout) => (layout.rows || !isVector(layout) ? 2 : 1);

/** The transform of part k: the registry's, else N in row form and T in column form. */
function transformOf(layout, k) {
  if (layout.transforms && layout.transforms.length) return layout.transforms[k];
  return layout.gate_axis === 1 && !isVector(layout) ? "T" : "N";
}

/**
 * The blocks of one stored tensor (mirrors rnnbridge.engine.layout.Tensor.blocks).
 * @returns {{name, part, gate, index: number[][], transform}[]} index: [start, stop) per axis
 */
export function blocksOf(layout, dims) {
  const gateLen = layout.gates === "" ? dims.P : dims.H;
  const gates = layout.gates === "" ? [""] : [...layout.gates];
  const blocks = [];
  let offset = 0;
  layout.parts.forEach((part, k) => {
    const width = isVector(layout) ? 1 : dims[PART_SHAPES[part][1]];
    gates.forEach((gate, j) => {
      let index;
      if (ndim(layout) === 1) {
        index = [[offset, offset + gateLen]];
        offset += gateLen;
      } else {
        const alongGates = [j * gateLen, (j + 1) * gateLen];
        const alongParts = [offset, offset + width];
        index = layout.gate_axis === 0 ? [alongGates, alongParts] : [alongParts, alongGates];
      }
      blocks.push({ name: part + gate, part, gate, index, transform: transformOf(layout, k) });
    });
    if (ndim(layout) === 2) offset += width;
  });
  return blocks;
}

/** The stored shape of a tensor for the given sizes (mirrors Tensor.shape). */
export function shapeOf(layout, dims) {
  const gateLen = layout.gates === "" ? dims.P : dims.H * layout.gates.length;
  if (ndim(layout) === 1) return [gateLen * layout.parts.length];
  const across = isVector(layout)
    ? layout.parts.length
    : layout.parts.reduce((sum, part) => sum + dims[PART_SHAPES[part][1]], 0);
  return layout.gate_axis === 0 ? [gateLen, across] : [across, gateLen];
}

/**
 * The sizes H, I, R, P of one cell from its stored shapes.
 * @param {object[]} present [{layout, shape}] of the tensors the cell stores
 */
export function solveDims(present) {
  const core = present.find((t) => t.layout.parts.includes("W_x"));
  const proj = present.find((t) => t.layout.parts.includes("W_proj"));
  const gateLen = core.shape[core.layout.gate_axis];
  const H = gateLen / core.layout.gates.length;
  const P = proj ? proj.shape[proj.layout.gate_axis] : 0;
  const R = P || H;
  const across = core.shape[1 - core.layout.gate_axis];
  const I = across - core.layout.parts.filter((p) => p === "W_h").length * R;
  return { H, I, R, P };
}

/**
 * The one place that writes a block's slice expression, NumPy style:
 * `name[4:8, :]`; a whole axis is `:`; a stacked direction axis (ONNX) comes first;
 * a vector stored as rows (Keras' GRU bias [2, 3H]) is indexed by its row.
 */
export function sliceExpression(tensorName, block, shape, stackIndex, layout) {
  const axes = block.index.map(([start, stop], axis) => {
    if (layout && layout.rows && isVector(layout) && axis === 1 - layout.gate_axis) return String(start);
    return start === 0 && stop === shape[axis] ? ":" : `${start}:${stop}`;
  });
  if (stackIndex !== null && stackIndex !== undefined) axes.unshift(String(stackIndex));
  return `${tensorName}[${axes.join(", ")}]`;
}

/** The shape of a block as stored (a row of a row-stacked vector is 1-D). */
export function blockShape(block, layout) {
  const sizes = block.index.map(([start, stop]) => stop - start);
  return layout.rows && isVector(layout) ? [sizes[layout.gate_axis]] : sizes;
}

/** The tensor name a target convention gives one tensor at one level and direction. */
export function targetName(conv, tensor, level, direction) {
  return conv.naming
    .replace("{tensor}", tensor)
    .replace("{level}", String(level))
    .replace("{direction}", direction)
    .replace("{reverse}", direction === "backward" ? "_reverse" : "");
}

/** The target conventions of `framework` for this layer, preferred first (mirrors conventions.candidates). */
export function targetConventions(conventions, framework, sourceConv) {
  return Object.entries(conventions)
    .map(([key, conv]) => ({ key, ...conv }))
    .filter(
      (c) =>
        c.framework === framework &&
        c.cell === sourceConv.cell &&
        !c.source_only &&
        !c.features.includes("single_cell") &&
        (c.cell === "lstm" || c.reset_after === sourceConv.reset_after),
    );
}

/** The stacked-direction index of a direction, or null where directions are separate tensors. */
function stackIndex(conv, direction, directions) {
  if (!conv.stack_directions) return null;
  return directions.length === 2 && direction === "backward" ? 1 : 0;
}

/** One tensor of one cell as drawn: its blocks with their slice expressions and shapes. */
function tensorGrid(conv, layout, name, dims, stack) {
  const shape = shapeOf(layout, dims);
  const blocks = blocksOf(layout, dims).map((block) => ({
    ...block,
    letter: block.gate === "" ? "" : conv.letters[block.gate] || block.gate,
    slice: sliceExpression(name, block, shape, stack, layout),
    shape: blockShape(block, layout),
  }));
  return { name, role: layout.name, group: layout.group, parts: layout.parts, gate_axis: layout.gate_axis, shape, blocks };
}

/** The cells (level, direction) of an inspected layer, in order. */
export function cellsOf(layer) {
  const seen = new Map();
  for (const t of layer.tensors) {
    const key = `${t.level}/${t.direction}`;
    if (!seen.has(key)) seen.set(key, { level: t.level, direction: t.direction });
  }
  return [...seen.values()];
}

/**
 * The gate map of one cell of an inspected layer, for one target framework.
 *
 * Computed here from the registry (GET /conventions) and the inspection; a server-side
 * explanation would replace this one function (see app.js `explain`).
 *
 * @returns {{source, target, targetConv, links, refused, notes, dims}}
 */
export function gateMap(conventions, layer, cell, targetFramework, options = {}) {
  const sourceConv = { key: layer.convention, ...conventions[layer.convention] };
  const directions = [...new Set(layer.tensors.map((t) => t.direction))];
  const stored = layer.tensors.filter((t) => t.level === cell.level && t.direction === cell.direction);
  const present = stored.map((t) => ({ tensor: t, layout: sourceConv.tensors.find((l) => l.name === t.role), shape: t.shape }));
  const dims = solveDims(present);
  const source = present.map(({ tensor, layout }) =>
    tensorGrid(sourceConv, layout, tensor.name, dims, stackIndex(sourceConv, cell.direction, directions)),
  );
  const result = { source, target: [], targetConv: null, links: [], notes: [], refused: null, dims };
  const candidates = targetConventions(conventions, targetFramework, sourceConv);
  if (!candidates.length) {
    const variant = sourceConv.reset_after ? "reset-after" : "reset-before";
    result.refused = `${targetFramework} has no ${variant} ${sourceConv.cell.toUpperCase()}: the conversion is refused`;
    return result;
  }
  const targetConv = candidates[0];
  result.targetConv = targetConv;
  const groups = new Set(present.map((p) => p.layout.group));
  const hasBias = groups.has("bias");
  const needed = new Set(["core"]);
  if (hasBias || !targetConv.features.includes("no_bias")) needed.add("bias");
  if (groups.has("peephole")) needed.add("peephole");
  if (groups.has("projection")) needed.add("projection");
  result.target = targetConv.tensors
    .filter((layout) => needed.has(layout.group))
    .map((layout) =>
      tensorGrid(
        targetConv,
        layout,
        targetName(targetConv, layout.name, cell.level, cell.direction),
        dims,
        stackIndex(targetConv, cell.direction, directions),
      ),
    );
  linkBlocks(result, sourceConv, targetConv, layer, options);
  return result;
}

/** Where each source block lands: same canonical block, or summed into the input bias. */
function linkBlocks(result, sourceConv, targetConv, layer, options) {
  const landing = new Map();
  result.target.forEach((tensor, ti) => tensor.blocks.forEach((block, bi) => landing.set(block.name, [ti, bi])));
  result.source.forEach((tensor, si) =>
    tensor.blocks.forEach((block, sbi) => {
      let to = landing.get(block.name);
      let kind = "copy";
      if (!to && block.part === "b_h") {
        to = landing.get("b_x" + block.gate);
        kind = "sum";
      }
      if (!to) {
        const what = `${PART_NAMES[block.part]}${block.gate ? " of gate " + block.letter : ""}`;
        result.notes.push(`${block.slice}: ${targetConv.native} has no place for the ${what}; the conversion is refused`);
        result.refused = result.refused || `${targetConv.native} cannot hold every block of this layer`;
        return;
      }
      const target = result.target[to[0]].blocks[to[1]];
      const transposed = block.part.startsWith("W") && transposes(block.transform, target.transform);
      result.links.push({ from: [si, sbi], to, kind, transposed, reinterpreted: block.transform === "R" });
    }),
  );
  const sourceBias = layer.config && sourceConv.cell === "lstm" ? layer.config.forget_bias || 0 : 0;
  const targetBias = options.targetForgetBias ?? (sourceConv.cell === "lstm" ? targetConv.forget_bias : 0);
  const forget = landing.get("b_xf");
  if (forget && (sourceBias || targetBias)) {
    const fold = [];
    const mark = [];
    if (sourceBias) {
      fold.push(`+${sourceBias} (source forget_bias)`);
      mark.push(`+${sourceBias}`);
    }
    if (targetBias) {
      fold.push(`−${targetBias} (target forget_bias)`);
      mark.push(`−${targetBias}`);
    }
    const block = result.target[forget[0]].blocks[forget[1]];
    block.folded = fold.join(" ");
    block.foldMark = mark.join(" ");
  }
  const fed = new Set(result.links.map((link) => link.to.join("/")));
  result.target.forEach((tensor, ti) =>
    tensor.blocks.forEach((block, bi) => {
      if (!fed.has(`${ti}/${bi}`)) block.zeros = true;
    }),
  );
}

/** Whether a block changes orientation between two transforms (R counts as its own layout). */
function transposes(from, to) {
  const flipped = (t) => t === "T" || t === "R";
  return flipped(from) !== flipped(to);
}
