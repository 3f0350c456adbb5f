// The page: upload → /inspect → layer table → gate map → /convert. Talks to the service
// through its public API only, with relative URLs (so it works under any root path).

import { GATE_NAMES, GATES, PART_NAMES, cellsOf, gateMap } from "./gatemap.js";
import { describeBlock, highlight, renderGateMap } from "./render.js";

const $ = (selector) => document.querySelector(selector);
const FALLBACK_FORMATS = ["npz", "json", "safetensors", "h5", "onnx", "tf_checkpoint"];

const state = {
  files: [],
  conventions: null, // GET /conventions
  convertFields: null, // the /convert form's fields, from the OpenAPI document
  inspection: null, // POST /inspect
  layer: null, // index into inspection.layers
  map: null,
  busy: false,
};

// ---------------------------------------------------------------- talking to the service

/** The credentials of a server with API keys (RNNBRIDGE_API_KEYS), when the user gave one. */
function credentials() {
  const key = $("#api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json", ...credentials() } });
  if (response.status === 401) {
    $("#access").open = true;
    throw new Error(`${url}: this server needs an API key (enter it under "API key")`);
  }
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

/**
 * POST a multipart form with upload progress (fetch cannot report it).
 * Resolves with {status, header(name), blob}; rejects only when the request could not be made.
 */
function upload(url, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.responseType = "blob";
    for (const [name, value] of Object.entries(credentials())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.upload.addEventListener("load", () => onProgress(1));
    xhr.addEventListener("load", () =>
      resolve({ status: xhr.status, header: (name) => xhr.getResponseHeader(name), blob: xhr.response }),
    );
    xhr.addEventListener("error", () => reject(new Error("the service could not be reached")));
    xhr.addEventListener("timeout", () => reject(new Error("the request timed out")));
    xhr.send(form);
  });
}

/** A problem+json body as a message element; anything else as its status line. */
async function problemOf(response) {
  let problem = { title: `HTTP ${response.status}`, detail: "" };
  try {
    problem = JSON.parse(await response.blob.text());
  } catch {
    /* not JSON: keep the status line */
  }
  return problem;
}

function showProblem(host, problem, what) {
  if (problem.status === 401) $("#access").open = true;
  const box = document.createElement("div");
  box.className = "problem";
  box.setAttribute("role", "alert");
  const title = document.createElement("p");
  title.className = "problem-title";
  title.textContent = `${what}: ${problem.title || "refused"}`;
  const detail = document.createElement("p");
  detail.className = "problem-detail";
  detail.textContent = problem.detail || "";
  box.append(title, detail);
  if (problem.code) {
    const code = document.createElement("p");
    code.className = "problem-code";
    code.textContent = `code: ${problem.code}${problem.layer ? ` · layer ${problem.layer}` : ""}`;
    box.append(code);
  }
  host.replaceChildren(box);
}

/**
 * The gate map of one cell for one target: the one place that decides where the map comes
 * from. Today it is computed in the browser from /conventions and /inspect (gatemap.js);
 * a server-side explanation can replace this body without touching anything else.
 */
async function explain(layer, cell, target, options) {
  return gateMap(state.conventions.conventions, layer, cell, target, options);
}

// ---------------------------------------------------------------- the form's fields

function sourceFields(form) {
  for (const name of ["source", "direction", "reset_after"]) {
    const value = $(`#${name}`).value;
    if (value) form.append(name, value);
  }
}

function filesForm() {
  const form = new FormData();
  for (const file of state.files) form.append("file", file, file.name);
  sourceFields(form);
  return form;
}

function setProgress(fraction, label) {
  const bar = $("#progress");
  bar.hidden = fraction === null;
  if (fraction !== null) bar.value = fraction;
  if (label !== undefined) $("#status").textContent = label;
}

// ---------------------------------------------------------------- 1. upload and inspect

function chooseFiles(files) {
  state.files = [...files];
  $("#chosen").textContent = state.files.length
    ? state.files.map((f) => `${f.name} (${f.size.toLocaleString()} bytes)`).join(", ")
    : "No file chosen.";
  if (state.files.length) inspect();
}

async function inspect() {
  if (state.busy) return;
  state.busy = true;
  setProgress(0, "Uploading…");
  try {
    const response = await upload("inspect", filesForm(), (f) =>
      setProgress(f, f < 1 ? `Uploading… ${Math.round(f * 100)} %` : "Reading the file…"),
    );
    if (response.status !== 200) {
      setProgress(null, "");
      showProblem($("#status"), await problemOf(response), "The file could not be read");
      for (const id of ["#layers-section", "#map-section", "#convert-section"]) $(id).hidden = true;
      document.body.dataset.inspected = String(Number(document.body.dataset.inspected || 0) + 1);
      return;
    }
    state.inspection = JSON.parse(await response.blob.text());
    setProgress(null, `Read ${state.files.map((f) => f.name).join(", ")}.`);
    showLayers();
    document.body.dataset.inspected = String(Number(document.body.dataset.inspected || 0) + 1);
  } catch (error) {
    setProgress(null, `Error: ${error.message}`);
  } finally {
    state.busy = false;
  }
}

// ---------------------------------------------------------------- 2. the layer table

function cellText(tr, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  tr.appendChild(td);
  return td;
}

function variantOf(layer) {
  const flags = layer.flags || {};
  const parts = [];
  if (layer.cell === "gru") parts.push(flags.reset_after ? "reset after" : "reset before");
  if (flags.peepholes) parts.push("peepholes");
  if (flags.projection) parts.push("projection");
  if (flags.bias === false) parts.push("no bias");
  if (flags.clip !== undefined && flags.clip !== null) parts.push(`clip ${flags.clip}`);
  if (flags.input_forget) parts.push("coupled input-forget");
  if (flags.go_backwards || flags.reverse_only) parts.push("reverse only");
  return parts.join(", ") || "standard";
}

function sizesOf(layer) {
  const sizes = [`in ${layer.input_size}`, `units ${layer.units}`];
  if (layer.proj_size) sizes.push(`proj ${layer.proj_size}`);
  return sizes.join(" · ");
}

function activationsOf(layer) {
  const acts = (layer.flags && layer.flags.activations) || {};
  return Object.entries(acts)
    .map(([slot, name]) => `${slot}: ${name}`)
    .join(", ");
}

/** Assumptions as readable warnings: each names the fact, the value assumed, why, and the
 * field that would state it (/inspect's {fact, value, field, because}). */
function assumptionsOf(layer) {
  return (layer.assumed || []).map((entry) => {
    if (typeof entry === "string") return `${entry} assumed`;
    const value = Array.isArray(entry.value) ? entry.value.join(", ") : entry.value;
    const because = entry.because ? ` (${entry.because})` : "";
    const field = entry.field ? `; state it with ${entry.field}` : "";
    return `${entry.fact} assumed: ${value}${because}${field}`;
  });
}

function warningList(items) {
  const ul = document.createElement("ul");
  ul.className = "warnings";
  for (const text of items) {
    const li = document.createElement("li");
    li.textContent = `⚠ ${text}`;
    ul.appendChild(li);
  }
  return ul;
}

function showLayers() {
  const inspection = state.inspection;
  $("#layers-section").hidden = false;
  const count = inspection.layers.length;
  $("#file-summary").textContent = `Format ${inspection.format}: ${count} recurrent layer${count === 1 ? "" : "s"}, ${inspection.other_tensors} other tensor${inspection.other_tensors === 1 ? "" : "s"} (ignored).`;
  const notes = inspection.notes || [];
  $("#file-notes").replaceChildren(...(notes.length ? [warningList(notes)] : []));
  const body = $("#layers tbody");
  body.replaceChildren();
  inspection.layers.forEach((layer, k) => {
    const tr = document.createElement("tr");
    tr.dataset.layer = layer.name;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = layer.name;
    tr.appendChild(th);
    const conv = cellText(tr, layer.convention);
    conv.title = layer.native || "";
    cellText(tr, layer.cell.toUpperCase(), "cell");
    cellText(tr, variantOf(layer), "variant");
    cellText(tr, sizesOf(layer), "sizes");
    cellText(tr, String(layer.num_layers), "levels");
    cellText(tr, `${layer.directions} (${layer.direction})`, "directions");
    cellText(tr, activationsOf(layer), "activations");
    cellText(tr, layer.dtype || "", "dtype");
    const warnings = [...assumptionsOf(layer), ...(layer.notes || [])];
    const td = cellText(tr, "", "assumptions");
    if (warnings.length) td.appendChild(warningList(warnings));
    else td.textContent = "none";
    const action = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button show-map";
    button.textContent = "Gate map";
    button.setAttribute("aria-label", `Show the gate map of ${layer.name}`);
    button.addEventListener("click", () => selectLayer(k));
    action.appendChild(button);
    tr.appendChild(action);
    body.appendChild(tr);
  });
  const unsupported = inspection.unsupported_layers || [];
  $("#unsupported-wrap").hidden = unsupported.length === 0;
  $("#unsupported").replaceChildren(
    ...unsupported.map((u) => {
      const li = document.createElement("li");
      li.textContent = `${u.name} (${u.kind}): ${u.reason}`;
      return li;
    }),
  );
  const layerSelect = $("#convert-layer");
  layerSelect.replaceChildren(new Option("all layers", ""), ...inspection.layers.map((l) => new Option(l.name, l.name)));
  $("#convert-section").hidden = count === 0;
  $("#result").replaceChildren();
  if (count) {
    const sourceFramework = inspection.layers[0].convention.split(".")[0];
    const other = state.conventions.frameworks.find((f) => f !== sourceFramework);
    setTarget(other);
    selectLayer(0);
  } else {
    $("#map-section").hidden = true;
  }
}

// ---------------------------------------------------------------- 3. the gate map

function selectLayer(k) {
  state.layer = k;
  const layer = state.inspection.layers[k];
  document.querySelectorAll("#layers tbody tr").forEach((tr, i) => tr.classList.toggle("selected", i === k));
  $("#map-section").hidden = false;
  $("#map-layer").textContent = layer.name;
  const cells = cellsOf(layer);
  $("#cell").replaceChildren(...cells.map((c, i) => new Option(`level ${c.level}, ${c.direction}`, String(i))));
  showLegend(layer);
  drawMap();
}

function showLegend(layer) {
  const items = [...GATES[layer.cell]].map((gate) => {
    const letter = state.conventions.conventions[layer.convention].letters?.[gate] || gate;
    return [`swatch gate-${gate}`, `${letter}: ${GATE_NAMES[gate]} (canonical ${gate})`];
  });
  items.push(
    ["swatch part-W_x", PART_NAMES.W_x + " (plain)"],
    ["swatch part-W_h", PART_NAMES.W_h + " (hatched)"],
    ["swatch part-b_x", PART_NAMES.b_x + " (dotted)"],
    ["swatch part-b_h", PART_NAMES.b_h + " (double dots)"],
    ["swatch part-p_", PART_NAMES.p_ + " (crossed)"],
    ["swatch gate-none", "projection (grey)"],
    ["swatch zeros", "zeros: nothing in the source lands here"],
    ["mark", "ᵀ transposed · + summed into the input bias · ≋ cuDNN memory reread · ± c folded constant"],
  );
  $("#legend").replaceChildren(
    ...items.map(([cls, text]) => {
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = cls;
      swatch.setAttribute("aria-hidden", "true");
      li.append(swatch, document.createTextNode(text));
      return li;
    }),
  );
}

function numberField(id) {
  const value = $(id).value.trim();
  return value === "" ? undefined : Number(value);
}

async function drawMap() {
  const layer = state.inspection.layers[state.layer];
  const cell = cellsOf(layer)[Number($("#cell").value || 0)];
  const target = $("#target").value;
  const sourceForgetBias = numberField("#source_forget_bias");
  const shown = sourceForgetBias === undefined ? layer : { ...layer, config: { ...layer.config, forget_bias: sourceForgetBias } };
  const map = await explain(shown, cell, target, { targetForgetBias: numberField("#target_forget_bias") });
  state.map = map;
  const source = layer.convention;
  const targetLabel = map.targetConv ? map.targetConv.key : `${target}: no such cell`;
  const svg = renderGateMap($("#gatemap"), map, { title: `Gate map of ${layer.name}, ${source} to ${targetLabel}`, source, target: targetLabel }, (side, ti, bi) =>
    showDetail(svg, side, ti, bi),
  );
  const into = map.targetConv
    ? `${map.targetConv.key} (${map.targetConv.native}); converted names start with the layer name, or the PyTorch prefix`
    : targetLabel;
  $("#map-caption").textContent = `${layer.convention} (${layer.native || ""}) → ${into}. Tensors are drawn to scale.`;
  const notes = [...map.notes];
  if (map.refused) notes.unshift(map.refused);
  $("#map-notes").replaceChildren(...(notes.length ? [warningList(notes)] : []));
  $("#detail").replaceChildren(para("Point at a block, or move to it with Tab, to see its exact slice."));
}

function para(text, className) {
  const p = document.createElement("p");
  p.textContent = text;
  if (className) p.className = className;
  return p;
}

function code(text) {
  const c = document.createElement("code");
  c.textContent = text;
  return c;
}

function showDetail(svg, side, ti, bi) {
  const map = state.map;
  const block = map[side][ti].blocks[bi];
  const node = svg.querySelectorAll(`.block[data-side="${side}"]`);
  const flat = map[side].slice(0, ti).reduce((n, t) => n + t.blocks.length, 0) + bi;
  highlight(svg, node[flat]);
  const host = $("#detail");
  const head = para("", "detail-slice");
  head.append(code(block.slice));
  const items = [head, para(describeBlock(block), "detail-text")];
  const links = map.links.filter((l) => (side === "source" ? l.from[0] === ti && l.from[1] === bi : l.to[0] === ti && l.to[1] === bi));
  for (const link of links) {
    const other = side === "source" ? map.target[link.to[0]].blocks[link.to[1]] : map.source[link.from[0]].blocks[link.from[1]];
    const how = [
      link.kind === "sum" ? "summed into the input bias" : "copied",
      link.reinterpreted ? "cuDNN memory reread in canonical shape" : link.transposed ? "transposed" : "same orientation",
    ].join(", ");
    const p = para(side === "source" ? "lands in " : "from ", "detail-link");
    p.append(code(other.slice), document.createTextNode(` [${other.shape.join(", ")}] — ${how}`));
    items.push(p);
  }
  if (block.folded) items.push(para(`folded constant: ${block.folded}`, "detail-fold"));
  if (block.zeros) items.push(para("written as zeros: the source stores nothing here", "detail-zeros"));
  if (side === "source" && !links.length) items.push(para("has no place in the target: converting is refused", "detail-refused"));
  host.replaceChildren(...items);
}

// ---------------------------------------------------------------- 4. convert

function setTarget(framework) {
  $("#target").value = framework;
  $("#convert-target").value = framework;
  updateFormats();
}

function updateFormats() {
  const target = $("#convert-target").value;
  const select = $("#format");
  const current = select.value;
  const formats = state.convertFields?.format?.enum || FALLBACK_FORMATS;
  const holds = (f) => !state.conventions.formats?.[f] || state.conventions.formats[f].includes(target);
  select.replaceChildren(...formats.filter(holds).map((f) => new Option(f, f)));
  if ([...select.options].some((o) => o.value === current)) select.value = current;
  $("#prefix").disabled = target !== "pytorch" || $("#bare").checked;
  $("#bare").disabled = target !== "pytorch";
}

/** The filename of a Content-Disposition header. */
function filenameOf(disposition, fallback) {
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition || "");
  return match ? decodeURIComponent(match[1]) : fallback;
}

async function convert(event) {
  event.preventDefault();
  if (state.busy || !state.files.length) return;
  state.busy = true;
  $("#convert").disabled = true;
  const form = filesForm();
  const target = $("#convert-target").value;
  form.append("target", target);
  form.append("format", $("#format").value);
  const layer = $("#convert-layer").value;
  if (layer) form.append("layer", layer);
  for (const name of ["source_forget_bias", "target_forget_bias"]) {
    const value = $(`#${name}`).value.trim();
    if (value !== "") form.append(name, value);
  }
  if (target === "pytorch") {
    if ($("#bare").checked) form.append("prefix", "");
    else if ($("#prefix").value !== "") form.append("prefix", $("#prefix").value);
  }
  form.append("verify", $("#verify").checked ? "true" : "false");
  if (!$("#strict-label").hidden) form.append("strict", $("#strict").checked ? "true" : "false");
  const result = $("#result");
  result.replaceChildren(para("Converting…"));
  setProgress(0, "Uploading…");
  try {
    const response = await upload("convert", form, (f) =>
      setProgress(f, f < 1 ? `Uploading… ${Math.round(f * 100)} %` : "Converting…"),
    );
    setProgress(null, "");
    if (response.status !== 200) {
      showProblem(result, await problemOf(response), "Conversion refused");
      return;
    }
    showDownload(response, target);
  } catch (error) {
    setProgress(null, "");
    result.replaceChildren(para(`Error: ${error.message}`, "problem"));
  } finally {
    state.busy = false;
    $("#convert").disabled = false;
  }
}

function showDownload(response, target) {
  const name = filenameOf(response.header("Content-Disposition"), `weights.${target}.${$("#format").value}`);
  if (state.download) URL.revokeObjectURL(state.download);
  state.download = URL.createObjectURL(response.blob);
  const link = document.createElement("a");
  link.id = "download";
  link.className = "button primary";
  link.href = state.download;
  link.download = name;
  link.textContent = `Download ${name}`;
  const items = [link, para(`${response.blob.size.toLocaleString()} bytes`)];
  const report = response.header("X-Rnnbridge-Verification");
  if (report) {
    const v = JSON.parse(report);
    items.push(
      para(
        `✔ Verification passed: max abs error ${v.max_abs_err.toExponential(2)} ≤ tolerance ${v.tolerance.toExponential(2)}` +
          ` (${v.layers} layer${v.layers === 1 ? "" : "s"}, seed ${v.seed})`,
        "verified",
      ),
    );
  } else if (!$("#verify").checked) {
    items.push(para("Not verified (verification was switched off).", "warning"));
  }
  $("#result").replaceChildren(...items);
}

// ---------------------------------------------------------------- start

async function start() {
  const dropzone = $("#dropzone");
  $("#files").addEventListener("change", (event) => chooseFiles(event.target.files));
  for (const name of ["dragenter", "dragover"]) {
    dropzone.addEventListener(name, (event) => {
      event.preventDefault();
      dropzone.classList.add("over");
    });
  }
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("over");
    chooseFiles(event.dataTransfer.files);
  });
  $("#cell").addEventListener("change", drawMap);
  $("#target").addEventListener("change", () => {
    setTarget($("#target").value);
    drawMap();
  });
  $("#convert-target").addEventListener("change", () => {
    setTarget($("#convert-target").value);
    if (state.inspection?.layers.length) drawMap();
  });
  for (const id of ["#source_forget_bias", "#target_forget_bias"]) {
    $(id).addEventListener("change", () => state.inspection?.layers.length && drawMap());
  }
  $("#bare").addEventListener("change", updateFormats);
  $("#convert-form").addEventListener("submit", convert);
  const key = $("#api-key");
  key.value = sessionStorage.getItem("rnnbridge-api-key") || "";
  key.addEventListener("change", () => {
    sessionStorage.setItem("rnnbridge-api-key", key.value.trim());
    if (!state.conventions) loadRegistry().catch(startFailed);
  });
  await loadRegistry();
}

/** The registry and the /convert form's fields; the page is ready once they are in. */
async function loadRegistry() {
  state.conventions = await getJSON("conventions");
  $("#status").textContent = "";
  const frameworks = state.conventions.frameworks;
  for (const select of ["#target", "#convert-target"]) $(select).replaceChildren(...frameworks.map((f) => new Option(f, f)));
  $("#source").append(...frameworks.map((f) => new Option(f, f)));
  try {
    const openapi = await getJSON("openapi.json");
    const ref = openapi.paths["/convert"].post.requestBody.content["multipart/form-data"].schema.$ref;
    state.convertFields = openapi.components.schemas[ref.split("/").pop()].properties;
    for (const f of Object.values(state.convertFields)) {
      if (!f.enum && f.anyOf) f.enum = f.anyOf.find((a) => a.enum)?.enum;
    }
  } catch {
    state.convertFields = null; // the document may be switched off: keep the known fields
  }
  $("#strict-label").hidden = !state.convertFields?.strict;
  updateFormats();
  document.body.dataset.ready = "true";
}

function startFailed(error) {
  $("#status").textContent = `The page could not start: ${error.message}`;
}

start().catch(startFailed);
