/* unitlens report: the unit browser.
 *
 * Reads window.UNITLENS_REPORT_INDEX (data/index.js: the stacks, their layers and their files). A layer's
 * index file (data/KEY.js: its numbers and thumbnails) is loaded when the layer is opened, a chunk of its
 * images (data/KEY-cN.js) when one of the chunk's units is shown, a data set's table of exemplars
 * (data/eN.js) with the first chunk that needs it; all by adding a <script> tag: browsers refuse the
 * fetch API on file:// pages, and the report opens from disk with no server. Each file calls
 * UNITLENS_LAYER(meta, bytes): meta is JSON (numbers, and where each section of the bytes lies), bytes a
 * string with one character per byte (the page is windows-1252, which the script inherits; 27 bytes decode
 * to other code points, mapped back here). Sections are zlib streams, inflated with
 * DecompressionStream("deflate"). unitlens.render.report.layer_files describes the format.
 *
 * Images are 8-bit levels, channel-major (a grey image is one plane; an RGB one its red, green and blue
 * planes in turn), each scaled on its own by the paper's display rule; each keeps the values its levels
 * 0 and 255 stand for, so a unit's or a layer's images can be redrawn on one common scale.
 *
 * This file is ASCII only (non-ASCII characters are written as \u escapes): the page's encoding is
 * windows-1252.
 */
(function () {
  "use strict";

  const INDEX = window.UNITLENS_REPORT_INDEX;
  const $ = (id) => document.getElementById(id);
  const section = $("explorer");
  const view = $("unit-view");
  const status = $("explorer-status");
  const linkError = $("link-error");
  const grid = $("unit-index");
  const pinsBox = $("pins");
  const pick = {
    dataset: $("pick-dataset"),
    model: $("pick-model"),
    layer: $("pick-layer"),
    unit: $("pick-unit"),
  };
  const controls = {
    scale: $("scale-mode"),
    sort: $("index-sort"),
    order: $("index-order"),
    filter: $("index-filter"),
    count: $("index-count"),
  };
  if (!view || !status || !grid) {
    return;
  }
  const DASH = "\u2014", STAR = "\u2605", TIMES = "\u00d7", MINUS = "\u2212";

  function disableControls(message) {
    status.textContent = message;
    document.querySelectorAll("#explorer select, #explorer button").forEach((c) => { c.disabled = true; });
  }

  if (!INDEX || !Array.isArray(INDEX.stacks) || INDEX.stacks.length === 0) {
    disableControls("No unit data: data/index.js is missing or holds no stacks (re-run `unitlens report RUN`).");
    return;
  }
  if (typeof DecompressionStream === "undefined") {
    disableControls("This browser cannot unpack the report's images (it lacks DecompressionStream: " +
      "use Chrome 80+, Firefox 113+ or Safari 16.4+).");
    return;
  }

  const stacks = INDEX.stacks;
  const study = INDEX.study || {};
  const state = { stack: null, entry: null, layer: null, unit: 0, pins: [] };

  // ---- small helpers ---------------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) { return DASH; }
    const d = digits === undefined ? 3 : digits;
    const a = Math.abs(x);
    if (a !== 0 && (a >= 1000 || a < Math.pow(10, -d))) { return x.toPrecision(d); }
    return x.toFixed(d);
  }

  // Activations: six significant digits, enough to show how far restarts that agree still differ.
  function fmtAct(x, digits) {
    return x === null || x === undefined || Number.isNaN(x) ? DASH : x.toPrecision(digits || 6);
  }

  function option(select, value, text) {
    const o = document.createElement("option");
    o.value = String(value);
    o.textContent = text;
    select.appendChild(o);
  }

  function isModel(stack) { return stack.kind === "model"; }
  function group(stack) { return stack.group || stack.dataset; }
  function layerLabel(stack, entry) {
    return isModel(stack) && entry.name ? entry.name : "layer " + entry.layer;
  }
  function unitAddress(stack, layerNumber, unitId) {
    return stack.name + "/" + layerNumber + "/" + unitId;
  }
  function geometry(stack) {
    const hw = stack.display || stack.spatial;
    return { h: hw[0], w: hw[1], c: stack.channels || 1 };
  }
  // The word for the activation a unit's numbers are in: the stacks' units are sigmoid units whose AM
  // maximizes the pre-sigmoid input; a user's model's unit is the layer's output as it is.
  function actWord(stack) { return isModel(stack) ? "activation" : "pre-sigmoid activation"; }

  // A term with its explanation, shown on hover, on keyboard focus and on touch (a tap toggles it).
  function term(text, tip) {
    const span = el("span", "term", text);
    if (tip) {
      span.tabIndex = 0;
      span.setAttribute("data-tip", tip);
      const bubble = el("span", "tip", tip);
      bubble.setAttribute("role", "tooltip");
      span.appendChild(bubble);
    }
    return span;
  }
  document.addEventListener("click", (e) => {
    const t = e.target instanceof Element ? e.target.closest(".term[data-tip]") : null;
    document.querySelectorAll(".term.open").forEach((x) => { if (x !== t) { x.classList.remove("open"); } });
    if (t) { t.classList.toggle("open"); }
  });

  // ---- loading a layer -------------------------------------------------------------------------------

  // The 27 code points that windows-1252 gives bytes 0x80-0x9F other than their own, back to the byte.
  const CP1252 = new Map([
    [0x20AC, 0x80], [0x201A, 0x82], [0x0192, 0x83], [0x201E, 0x84], [0x2026, 0x85], [0x2020, 0x86],
    [0x2021, 0x87], [0x02C6, 0x88], [0x2030, 0x89], [0x0160, 0x8A], [0x2039, 0x8B], [0x0152, 0x8C],
    [0x017D, 0x8E], [0x2018, 0x91], [0x2019, 0x92], [0x201C, 0x93], [0x201D, 0x94], [0x2022, 0x95],
    [0x2013, 0x96], [0x2014, 0x97], [0x02DC, 0x98], [0x2122, 0x99], [0x0161, 0x9A], [0x203A, 0x9B],
    [0x0153, 0x9C], [0x017E, 0x9E], [0x0178, 0x9F],
  ]);

  function bytesOf(text) {
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      out[i] = c < 256 ? c : CP1252.get(c);
    }
    return out;
  }

  async function inflate(packed) {
    // "deflate" in the Compression Streams standard is the zlib format that Python's zlib writes.
    const stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  const waiting = new Map();  // file key -> {resolve, reject}
  window.UNITLENS_LAYER = function (meta, text) {
    const w = meta && waiting.get(meta.key);
    if (w) { waiting.delete(meta.key); w.resolve({ meta: meta, text: text }); }
  };

  function loadScript(key) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      const src = "data/" + key + ".js";
      waiting.set(key, { resolve: resolve, reject: reject });
      script.src = src;
      script.onload = () => {
        script.remove();
        if (waiting.has(key)) {
          waiting.delete(key);
          reject(new Error(src + " ran but did not deliver layer " + key + " (a file from another report?)"));
        }
      };
      script.onerror = () => {
        script.remove();
        waiting.delete(key);
        reject(new Error("could not load " + src + ": the file is missing or unreadable " +
          "(re-render the report with `unitlens report RUN`)"));
      };
      document.head.appendChild(script);
    });
  }

  async function section_(blob, meta, name, Type) {
    const s = meta.sections[name];
    const raw = await inflate(blob.subarray(s.offset, s.offset + s.length));
    return new Type(raw.buffer, 0, s.count);
  }

  // The decoded layers, most recently used last; a few are kept so that going back is instant, and the
  // rest are dropped so memory stays bounded however many layers are visited.
  const layers = new Map();
  const KEEP_LAYERS = 3;

  // Images several layers share (a data set's exemplars), loaded once with the first layer that uses them
  // and kept: they are few, and every layer of the data set refers to them.
  const sharedTables = new Map();

  function getShared(key) {
    let promise = sharedTables.get(key);
    if (!promise) {
      promise = loadScript(key).then(({ meta, text }) =>
        meta.table_rows ? section_(bytesOf(text), meta, "table", Uint8Array) : new Uint8Array(0));
      promise.catch(() => sharedTables.delete(key));
      sharedTables.set(key, promise);
    }
    return promise;
  }

  // A layer's index file: its numbers, thumbnails and selectivity matrix. Its images come in chunks of
  // units (data/KEY-cN.js), loaded when a unit of the chunk is shown.
  async function decodeLayer(entry) {
    const { meta, text } = await loadScript(entry.key);
    const blob = bytesOf(text);
    const [thumbs, thumbRanges, selectivity] = await Promise.all([
      meta.sections.thumbs ? section_(blob, meta, "thumbs", Uint8Array) : Promise.resolve(null),
      meta.sections.thumb_ranges ? section_(blob, meta, "thumb_ranges", Float32Array) : Promise.resolve(null),
      meta.sections.selectivity ? section_(blob, meta, "selectivity", Uint8Array) : Promise.resolve(null),
    ]);
    return {
      meta: meta, numbers: meta.numbers, width: meta.width, kinds: meta.kinds, thumbs: thumbs,
      thumbRanges: thumbRanges, selectivity: selectivity, chunks: new Map(),
    };
  }

  function getLayer(entry) {
    let promise = layers.get(entry.key);
    if (promise) {
      layers.delete(entry.key);
    } else {
      promise = decodeLayer(entry);
      promise.catch(() => layers.delete(entry.key));
    }
    layers.set(entry.key, promise);
    while (layers.size > KEEP_LAYERS) { layers.delete(layers.keys().next().value); }
    return promise;
  }

  function chunkIndex(layer, u) {
    return layer.meta.chunks.findIndex((c) => u >= c.first_unit && u < c.first_unit + c.n_units);
  }

  // A chunk's table continues the layer's thumbnails (rows 0 .. units - 1), so an image equal to a
  // thumbnail, or a difference from one, refers to it.
  async function decodeChunk(layer, c) {
    const { meta, text } = await loadScript(layer.meta.chunks[c].key);
    const blob = bytesOf(text);
    const width = layer.width, offset = meta.table_offset;
    const tables = {};
    for (const kind of Object.keys(layer.kinds)) {
      const key = layer.kinds[kind].shared;
      if (key) { tables[kind] = await getShared(key); }
    }
    // The sections inflate side by side (the browser may decompress off the main thread).
    const [own, bases, rows, ranges] = await Promise.all([
      meta.sections.table ? section_(blob, meta, "table", Uint8Array) : Promise.resolve(new Uint8Array(0)),
      section_(blob, meta, "bases", Int32Array),
      section_(blob, meta, "rows", Uint32Array),
      section_(blob, meta, "ranges", Float32Array),
    ]);
    const table = new Uint8Array((offset + meta.table_rows) * width);
    table.set(layer.thumbs, 0);
    table.set(own, offset * width);
    for (let i = 0; i < bases.length; i++) {
      const b = bases[i];
      if (b < 0) { continue; }  // a row of its own; else a difference from an earlier row, mod 256
      const o = (offset + i) * width, ob = b * width;
      for (let p = 0; p < width; p++) { table[o + p] = (table[o + p] + table[ob + p]) & 255; }
    }
    Object.keys(layer.kinds).forEach((kind) => { if (!tables[kind]) { tables[kind] = table; } });
    return { meta: meta, first: meta.first_unit, tables: tables, rows: rows, ranges: ranges };
  }

  // Decoded chunks, most recently used last, across layers; a few are kept.
  const chunkCache = [];
  const KEEP_CHUNKS = 8;

  async function ensureChunk(layer, u) {
    const c = chunkIndex(layer, u);
    if (c < 0) { throw new Error("unit index " + u + " is in no chunk of " + layer.meta.key); }
    let promise = layer.chunks.get(c);
    if (!promise) {
      promise = decodeChunk(layer, c);
      promise.catch(() => layer.chunks.delete(c));
      layer.chunks.set(c, promise);
    }
    const at = chunkCache.findIndex((x) => x.layer === layer && x.c === c);
    if (at >= 0) { chunkCache.splice(at, 1); }
    chunkCache.push({ layer: layer, c: c });
    while (chunkCache.length > KEEP_CHUNKS) {
      const old = chunkCache.shift();
      old.layer.chunks.delete(old.c);
      if (old.layer.ready) { old.layer.ready.delete(old.c); }
    }
    const chunk = await promise;
    layer.ready = layer.ready || new Map();
    layer.ready.set(c, chunk);
    return chunk;
  }

  // ---- images and scales -----------------------------------------------------------------------------

  // Image i of unit u of a kind: its table, its levels' offset there and its value range [lo, hi]. The
  // unit's chunk is loaded (ensureChunk) before anything of it is drawn.
  function imageRef(layer, kind, u, i) {
    const chunk = layer.ready && layer.ready.get(chunkIndex(layer, u));
    if (!chunk) { throw new Error("the images of unit index " + u + " are not loaded"); }
    const place = chunk.meta.images[kind];
    const n = place.first + (u - chunk.first) * layer.kinds[kind].per_unit + i;
    return {
      table: chunk.tables[kind], offset: chunk.rows[n] * layer.width,
      lo: chunk.ranges[2 * n], hi: chunk.ranges[2 * n + 1],
    };
  }

  function thumbRef(layer, u) {
    return { table: layer.thumbs, offset: u * layer.width, lo: layer.thumbRanges[2 * u], hi: layer.thumbRanges[2 * u + 1] };
  }

  function symmetric(lo, hi) { const m = Math.max(Math.abs(lo), Math.abs(hi)); return [-m, m]; }

  // The common scale [LO, HI] of some images of one kind (signed kinds keep zero at mid grey).
  function commonScale(layer, kind, refs) {
    let lo = Infinity, hi = -Infinity;
    refs.forEach((r) => { lo = Math.min(lo, r.lo); hi = Math.max(hi, r.hi); });
    return layer.kinds[kind].signed ? symmetric(lo, hi) : [lo, hi];
  }

  // One scale for all of a layer's images of a kind (the index file holds it).
  function layerScale(layer, kind) { return layer.kinds[kind].layer_range; }

  function scaleMode() { return controls.scale ? controls.scale.value : "image"; }

  // The scale images of a kind are drawn on, for the unit's images `refs`: null means each on its own.
  function scaleFor(stack, layer, kind, refs) {
    if (stack.vector) { return null; }  // bar plots of vectors have no grey scale to share
    const mode = scaleMode();
    if (mode === "unit") { return commonScale(layer, kind, refs); }
    if (mode === "layer") { return layerScale(layer, kind); }
    return null;
  }

  function rangeText(lo, hi, signed) {
    return signed ? "black " + fmt(lo, 3) + ", grey 0, white " + fmt(hi, 3)
      : "black " + fmt(lo, 3) + ", white " + fmt(hi, 3);
  }

  // Draw one image's levels into an ImageData, remapped to the common scale when there is one.
  function paint(ctx, layer, ref, shape, scale, dx, dy) {
    const h = shape.h, w = shape.w, c = shape.c, plane = h * w;
    const image = ctx.createImageData(w, h);
    const t = ref.table, o = ref.offset;
    const green = c === 3 ? plane : 0, blue = c === 3 ? 2 * plane : 0;
    let a = 1, b = 0;
    if (scale && scale[1] > scale[0]) {
      // level q stands for lo + (hi - lo) q / 255; on [LO, HI] it becomes 255 (value - LO) / (HI - LO).
      a = (ref.hi - ref.lo) / (scale[1] - scale[0]);
      b = 255 * (ref.lo - scale[0]) / (scale[1] - scale[0]);
    }
    const map = new Uint8ClampedArray(256);
    for (let q = 0; q < 256; q++) { map[q] = Math.round(a * q + b); }
    for (let i = 0; i < plane; i++) {
      const p = 4 * i;
      image.data[p] = map[t[o + i]];
      image.data[p + 1] = map[t[o + green + i]];
      image.data[p + 2] = map[t[o + blue + i]];
      image.data[p + 3] = 255;
    }
    ctx.putImageData(image, dx || 0, dy || 0);
  }

  function canvasFor(shape, zoom, label) {
    const canvas = document.createElement("canvas");
    canvas.width = shape.w;
    canvas.height = shape.h;
    canvas.style.width = shape.w * zoom + "px";
    canvas.style.height = shape.h * zoom + "px";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", label);
    return canvas;
  }

  function zoomFor(shape, target) {
    return Math.max(1, Math.round(target / Math.max(shape.h, shape.w)));
  }

  // One image on a canvas in a figure, with its caption and, in its tooltip, the values it shows.
  function imageFigure(ctx, kind, u, i, zoom, caption, label, extraClass, scale) {
    const ref = imageRef(ctx.layer, kind, u, i);
    const fig = el("figure", "tile" + (extraClass ? " " + extraClass : ""));
    const signed = ctx.layer.kinds[kind].signed;
    const range = scale || (signed ? symmetric(ref.lo, ref.hi) : [ref.lo, ref.hi]);
    const values = ctx.stack.vector ? "" : " (" + rangeText(range[0], range[1], signed) + ")";
    const canvas = canvasFor(ctx.shape, zoom, label + values);
    canvas.title = label + values;
    paint(canvas.getContext("2d"), ctx.layer, ref, ctx.shape, scale);
    fig.appendChild(canvas);
    if (caption) { fig.appendChild(el("figcaption", "", caption)); }
    return fig;
  }

  // The legend of a panel's scale: what black and white stand for, or that each image has its own.
  function legend(ctx, kind, scale) {
    if (ctx.stack.vector) { return el("p", "legend", "Vectors are drawn as bar plots, one bar per value."); }
    const signed = ctx.layer.kinds[kind].signed;
    const how = signed ? "signed: zero is grey" : "stretched from its lowest to its highest value";
    if (!scale) {
      return el("p", "legend", "Each image on its own scale (" + how + "); hover an image for its range.");
    }
    const which = scaleMode() === "unit" ? "One scale for this unit's images" : "One scale for the whole layer";
    return el("p", "legend", which + ": " + rangeText(scale[0], scale[1], signed) + ".");
  }

  // ---- the unit index --------------------------------------------------------------------------------

  const SORTS = {
    unit: { label: "unit", value: (n, u) => n.units[u] },
    restart: { label: "restart agreement", value: (n, u) => (n.restart_mean_cosine ? n.restart_mean_cosine[u] : null) },
    margin: { label: "selectivity margin", value: (n, u, l) => marginOf(l, u) },
    vsdata: { label: "AM vs data", value: (n, u) => vsData(n, u) },
    activation: { label: "AM activation", value: (n, u) => (n.am_activation ? n.am_activation[u][n.am_best[u]] : null) },
    energy: { label: "energy concentration", value: (n, u) => (n.energy_concentration ? n.energy_concentration[u] : null) },
    lc: { label: "LC vs AM", value: (n, u) => (n.lc_vs_am ? n.lc_vs_am[u] : null) },
    samples: { label: "samples vs AM", value: (n, u) => (n.samples_vs_am ? n.samples_vs_am[u] : null) },
  };

  function marginOf(layer, u) {
    const s = layer.meta.selectivity;
    return s && u < s.n && s.margin ? s.margin[u] : null;
  }

  // How far AM's best input drives the unit above the data set's best input (both pre-sigmoid).
  function vsData(n, u) {
    if (!n.am_activation || !n.exemplar_activations || !n.exemplar_activations[u].length) { return null; }
    const best = n.am_activation[u][n.am_best[u]], top = n.exemplar_activations[u][0];
    return best === null || top === null ? null : best - top;
  }

  function flagged(n, u) { return Boolean(n.flat && n.flat[u] === 1); }
  function isDead(n, u) { return Boolean(n.dead && n.dead[u] === 1); }
  function capped(n, u) {
    if (!n.am_converged || !n.am_steps) { return false; }
    const c = n.am_converged[u], s = n.am_steps[u];
    const stopped = c.filter((x) => x === 0).length;
    // A recipe without a stopping rule runs every restart to the same fixed count: no cap was hit.
    const fixed = stopped === c.length && Math.min(...s) === Math.max(...s);
    return stopped > 0 && !fixed;
  }

  const FILTERS = {
    all: () => true,
    flagged: (l, u) => flagged(l.numbers, u),
    ok: (l, u) => !flagged(l.numbers, u),
    disagree: (l, u) => {
      const c = l.numbers.restart_mean_cosine;
      const t = l.meta.restart_threshold;
      return Boolean(c) && t !== null && c[u] !== null && c[u] < t;
    },
    capped: (l, u) => capped(l.numbers, u),
    degenerate: (l, u) => {
      const e = l.numbers.energy_concentration, t = l.meta.degenerate_threshold;
      return Boolean(e) && t !== null && e[u] !== null && e[u] > t;
    },
    claimed: (l, u) => { const m = marginOf(l, u); return m !== null && m <= 0; },
  };

  function thumbKind(layer) { return layer.meta.thumb_kind; }

  // Every thumbnail of the layer on one canvas (#index-sprite, unit u at column u % cols, row u / cols),
  // shown through one stylesheet rule as the background of each thumbnail: a thousand canvases cost the
  // browser about 0.3 s to lay out and paint, a thousand backgrounds of one image almost nothing.
  let spriteStyle = null;

  function drawSprite(layer, shape, scale, zoom) {
    const n = layer.meta.n_units, cols = Math.max(1, Math.ceil(Math.sqrt(n)));
    let sprite = $("index-sprite");
    if (!sprite) {
      sprite = document.createElement("canvas");
      sprite.id = "index-sprite";
      sprite.hidden = true;
      sprite.setAttribute("aria-hidden", "true");
      grid.after(sprite);
    }
    sprite.width = cols * shape.w;
    sprite.height = Math.max(1, Math.ceil(n / cols)) * shape.h;
    const ctx = sprite.getContext("2d");
    for (let u = 0; u < n; u++) {
      paint(ctx, layer, thumbRef(layer, u), shape, scale, (u % cols) * shape.w, Math.floor(u / cols) * shape.h);
    }
    if (!spriteStyle) {
      spriteStyle = document.createElement("style");
      document.head.appendChild(spriteStyle);
    }
    spriteStyle.textContent = "#unit-index .thumb-img{background-image:url(" + sprite.toDataURL("image/png") +
      ");background-size:" + sprite.width * zoom + "px " + sprite.height * zoom + "px}";
    return cols;
  }

  function buildIndex(stack, entry, layer) {
    const n = layer.numbers, shape = geometry(stack), kind = thumbKind(layer);
    const zoom = zoomFor(shape, 48);
    const fragment = document.createDocumentFragment();
    const scale = scaleMode() === "layer" && !stack.vector ? layerScale(layer, kind) : null;
    const cols = drawSprite(layer, shape, scale, zoom);
    for (let u = 0; u < entry.n_units; u++) {
      const button = el("button", "thumb");
      button.type = "button";
      button.dataset.unit = String(n.units[u]);
      button.dataset.index = String(u);
      const x = (u % cols) * shape.w, y = Math.floor(u / cols) * shape.h;
      button.dataset.x = String(x);  // where its image lies on #index-sprite
      button.dataset.y = String(y);
      const image = el("span", "thumb-img");
      image.setAttribute("aria-hidden", "true");
      image.style.width = shape.w * zoom + "px";
      image.style.height = shape.h * zoom + "px";
      image.style.backgroundPosition = -x * zoom + "px " + -y * zoom + "px";
      button.appendChild(image);
      const caption = el("span", "thumb-caption", String(n.units[u]));
      button.appendChild(caption);
      if (flagged(n, u)) {
        button.classList.add("flagged");
        button.appendChild(el("span", "badge", isDead(n, u) ? "dead" : "flat"));
      }
      fragment.appendChild(button);
    }
    grid.replaceChildren(fragment);
    grid.dataset.layer = stack.name + "/" + entry.layer;
    arrangeIndex();
  }

  // Sort and filter the thumbnails in place (no redraw), and say how many are shown.
  function arrangeIndex() {
    const layer = state.layer;
    if (!layer) { return; }
    const n = layer.numbers;
    const sort = SORTS[controls.sort ? controls.sort.value : "unit"] || SORTS.unit;
    const keep = FILTERS[controls.filter ? controls.filter.value : "all"] || FILTERS.all;
    const descending = controls.order && controls.order.dataset.order === "desc";
    const buttons = Array.from(grid.querySelectorAll("button.thumb"));
    const keyed = buttons.map((b) => {
      const u = Number(b.dataset.index);
      return { b: b, u: u, v: sort.value(n, u, layer) };
    });
    keyed.sort((x, y) => {
      const a = x.v, b = y.v;
      if (a === null || a === undefined) { return b === null || b === undefined ? x.u - y.u : 1; }
      if (b === null || b === undefined) { return -1; }  // units without the number go last either way
      return (descending ? b - a : a - b) || x.u - y.u;
    });
    let shown = 0;
    const fragment = document.createDocumentFragment();
    keyed.forEach((k) => {
      const visible = keep(layer, k.u);
      k.b.hidden = !visible;
      shown += visible ? 1 : 0;
      const id = n.units[k.u];
      const value = sort === SORTS.unit ? "" : " \u00b7 " + fmt(k.v, 4);
      k.b.querySelector(".thumb-caption").textContent = id + value;
      const flag = flagged(n, k.u) ? (isDead(n, k.u) ? ", dead" : ", flat") : "";
      k.b.setAttribute("aria-label", "Unit " + id + (sort === SORTS.unit ? "" : ", " + sort.label + " " +
        fmt(k.v, 3)) + flag);
      k.b.setAttribute("aria-pressed", k.u === state.unit ? "true" : "false");
      fragment.appendChild(k.b);
    });
    grid.appendChild(fragment);
    if (controls.count) {
      controls.count.textContent = "Showing " + shown + " of " + buttons.length + " units, by " + sort.label +
        (sort === SORTS.unit ? "" : descending ? " (highest first)" : " (lowest first)") + ".";
    }
  }

  function markCurrent() {
    grid.querySelectorAll("button.thumb[aria-pressed=true]").forEach((b) => b.setAttribute("aria-pressed", "false"));
    const b = grid.querySelector('button.thumb[data-index="' + state.unit + '"]');
    if (b) { b.setAttribute("aria-pressed", "true"); }
    return b;
  }

  // The units in the index's current order and filter (what the arrow keys walk through).
  function visibleOrder() {
    return Array.from(grid.querySelectorAll("button.thumb")).filter((b) => !b.hidden).map((b) => Number(b.dataset.index));
  }

  // ---- the view of one unit --------------------------------------------------------------------------

  function panel(id, title) {
    const s = el("section", "panel");
    s.id = "panel-" + id;
    const heading = el("h3", "", title);
    heading.id = "panel-" + id + "-h";
    s.setAttribute("aria-labelledby", heading.id);
    s.appendChild(heading);
    return s;
  }

  function row(children, className) {
    const div = el("div", "row" + (className ? " " + className : ""));
    children.forEach((c) => div.appendChild(c));
    return div;
  }

  function definitionList(items) {
    const dl = el("dl", "numbers");
    items.forEach(([name, tip, value, note]) => {
      const dt = el("dt");
      dt.appendChild(term(name, tip));
      dl.appendChild(dt);
      const dd = el("dd", "", value);
      if (note) { dd.appendChild(el("span", "flag", " " + note)); }
      dl.appendChild(dd);
    });
    return dl;
  }

  function barChart(values, highlight, label) {
    const n = values.length;
    const bar = Math.max(2, Math.floor(288 / n));
    const height = 72;
    const canvas = document.createElement("canvas");
    canvas.className = "chart";
    canvas.width = n * bar;
    canvas.height = height;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", label);
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#f1f3f5";
    ctx.fillRect(0, 0, canvas.width, height);
    for (let j = 0; j < n; j++) {
      const h = Math.round((values[j] / 255) * (height - 2));
      ctx.fillStyle = j === highlight ? "#c2410c" : "#64748b";
      ctx.fillRect(j * bar, height - h, bar > 2 ? bar - 1 : bar, h);
    }
    return canvas;
  }

  function unitName(stack, entry, unitId) {
    return (isModel(stack) ? stack.dataset_label + " (" + stack.model_label + ") " + layerLabel(stack, entry)
      : stack.model_label + " layer " + entry.layer) + " unit " + unitId;
  }

  function refsOf(layer, kind, u) {
    const k = layer.kinds[kind].per_unit, out = [];
    for (let i = 0; i < k; i++) { out.push(imageRef(layer, kind, u, i)); }
    return out;
  }

  const TIPS = {
    restart: "Mean cosine between every pair of this unit's AM restarts (1: all restarts found the same " +
      "input; the paper's 'unimodal' finding). Restarts disagree below the study's threshold.",
    activations: "The lowest and highest value the restarts reached.",
    energy: "Share of the AM image's energy (sum of squares) in its 10 largest pixels: near 1, the optimum " +
      "is a few bright pixels (degenerate) rather than a pattern.",
    lc: "Pearson correlation between the linear combination of the layer below's filters and the AM image.",
    samples: "Pearson correlation between the mean of the clamped DBN samples and the AM image.",
    steps: "Gradient steps each restart took before its stopping rule (or the step cap) ended it.",
    stationarity: "Share of the gradient at the optimum that lies along the sphere of the norm constraint " +
      "(0: a constrained optimum). A dash: the recipe has no constraint surface.",
    margin: "This unit's own (column-normalised) response to its AM image minus the largest response of " +
      "any other of the first units; at or below 0 another unit claims this pattern.",
    vsdata: "The AM image's activation minus the highest activation of any training input.",
    flag: "Dead: the unit cannot be moved (zero gradient at every start, or a constant activation over the " +
      "data). Flat: its restarts reach the same activation with different inputs (a plateau).",
  };

  function buildView(stack, entry, layer, u) {
    const shape = geometry(stack);
    const big = zoomFor(shape, 168), small = zoomFor(shape, 84);
    const n = layer.numbers;
    const unitId = n.units[u];
    const model = isModel(stack);
    const name = unitName(stack, entry, unitId);
    const word = actWord(stack);
    const R = entry.n_restarts;
    const best = n.am_best[u];
    const acts = n.am_activation[u];
    const ctx = { stack: stack, layer: layer, shape: shape };
    const panels = [];
    const flat = flagged(n, u), dead = isDead(n, u);

    // Headline: the filter (layer 1) and the best AM optimum.
    const main = panel("main", layer.kinds.filters ? "Filter and AM optimum" : "Activation maximization");
    if (flat) {
      const warn = el("p", "warning", (dead ? "Dead unit: it cannot be moved (its gradient at every start " +
        "vanishes, or its activation is constant over the data), so the AM image below is its random start. "
        : "Flat unit: every restart reaches the same activation with a different pattern, so the AM image " +
        "below is one arbitrary point of a plateau. ") +
        "Each image is stretched to full contrast on its own: it is not a feature.");
      warn.setAttribute("role", "note");
      main.appendChild(warn);
    }
    const heads = [];
    const amScale = scaleFor(stack, layer, "am_x", refsOf(layer, "am_x", u));
    if (layer.kinds.filters) {
      heads.push(imageFigure(ctx, "filters", u, 0, big, "filter (weight row " + unitId + ")", name + ": filter",
        "headline", scaleFor(stack, layer, "filters", refsOf(layer, "filters", u))));
    }
    heads.push(imageFigure(ctx, "am_x", u, best, big,
      "AM best: restart " + (best + 1) + " of " + R + ", " + word + " " + fmtAct(acts[best]) +
        (flat ? " (not a feature)" : ""),
      name + ": best activation-maximization input", "headline", amScale));
    main.appendChild(row(heads));
    main.appendChild(legend(ctx, "am_x", amScale));
    panels.push(main);

    // The unit's numbers, each with its explanation.
    const info = panel("numbers", "Numbers");
    const finite = acts.filter((a) => a !== null);
    const conc = n.energy_concentration ? n.energy_concentration[u] : null;
    const items = [
      ["Unit", "The unit's index in its layer, and its place among the units studied.",
        String(unitId) + " (" + (u + 1) + " of " + entry.n_units + " studied)"],
      ["Mean restart cosine", TIPS.restart, n.restart_mean_cosine ? fmt(n.restart_mean_cosine[u]) : DASH],
      ["Restart activations", TIPS.activations + " (" + word + ")",
        finite.length ? fmtAct(Math.min(...finite)) + " to " + fmtAct(Math.max(...finite)) : DASH],
      ["AM vs data", TIPS.vsdata + " (" + word + ")", fmt(vsData(n, u))],
      ["Energy concentration", TIPS.energy, fmt(conc),
        conc !== null && layer.meta.degenerate_threshold !== null && conc > layer.meta.degenerate_threshold
          ? "(degenerate: energy in a few pixels)" : ""],
    ];
    if (!model || n.lc_vs_am) {
      items.push(["LC vs AM (Pearson)", TIPS.lc, n.lc_vs_am ? fmt(n.lc_vs_am[u]) : DASH]);
    }
    if (!model || n.samples_vs_am) {
      items.push(["Samples vs AM (Pearson)", TIPS.samples, n.samples_vs_am ? fmt(n.samples_vs_am[u]) : DASH]);
    }
    if (n.am_steps) {
      const steps = n.am_steps[u];
      const stopped = n.am_converged ? n.am_converged[u].filter((c) => c === 0).length : 0;
      items.push(["AM steps", TIPS.steps, Math.min(...steps) + " to " + Math.max(...steps),
        capped(n, u) ? "(" + stopped + " stopped by the cap)" : ""]);
    }
    if (n.am_stationarity) {
      const st = n.am_stationarity[u].filter((x) => x !== null);
      items.push(["AM stationarity", TIPS.stationarity, st.length ? fmt(Math.min(...st)) + " to " + fmt(Math.max(...st)) : DASH]);
    }
    if (layer.meta.selectivity && u < layer.meta.selectivity.n) {
      const m = marginOf(layer, u);
      items.push(["Selectivity margin", TIPS.margin, fmt(m), m !== null && m <= 0 ? "(another unit claims this pattern)" : ""]);
    }
    if (n.flat) {
      items.push(["Dead or flat", TIPS.flag, flat ? (dead ? "dead" : "flat (plateau)") : "no"]);
    }
    info.appendChild(definitionList(items));
    panels.push(info);

    // Every restart, with its final activation.
    const restarts = panel("restarts", "All " + R + " AM restarts");
    const tiles = [];
    const converged = n.am_converged ? n.am_converged[u] : null;
    for (let r = 0; r < R; r++) {
      let caption = "r" + (r + 1) + ": " + fmtAct(acts[r]) + (r === best ? " " + STAR : "");
      if (converged && converged[r] === 0 && capped(n, u)) { caption += " (capped)"; }
      tiles.push(imageFigure(ctx, "am_x", u, r, small, caption,
        name + ": restart " + (r + 1) + ", " + word + " " + fmtAct(acts[r]), r === best ? "best" : "", amScale));
    }
    restarts.appendChild(row(tiles, "wrap"));
    restarts.appendChild(el("p", "caption", "Captions: each restart's final " + word + "; " + STAR + " the best."));
    panels.push(restarts);

    // Clamped samples (DBN, layer >= 2) and their mean.
    const samples = panel("samples", "Samples with the unit clamped on");
    if (layer.kinds.samples) {
      const S = layer.kinds.samples.per_unit;
      const sScale = scaleFor(stack, layer, "samples", refsOf(layer, "samples", u));
      const sTiles = [];
      for (let s = 0; s < S; s++) {
        sTiles.push(imageFigure(ctx, "samples", u, s, small, "", name + ": clamped sample " + (s + 1), "", sScale));
      }
      samples.appendChild(row(sTiles, "wrap"));
      if (layer.kinds.samples_mean) {
        const corr = n.samples_vs_am ? n.samples_vs_am[u] : null;
        samples.appendChild(row([imageFigure(ctx, "samples_mean", u, 0, big,
          "mean of " + S + " samples (vs AM: " + fmt(corr) + ")", name + ": mean of the clamped samples", "",
          scaleFor(stack, layer, "samples_mean", refsOf(layer, "samples_mean", u)))]));
      }
      samples.appendChild(legend(ctx, "samples", sScale));
    } else {
      let why = "No clamped samples in this run's results.";
      if (model) { why = "Clamped sampling is defined for DBNs, not for this model."; }
      else if (stack.model === "sdae") { why = "The SDAE is not a generative model: it has no clamped samples."; }
      else if (entry.layer === 1) { why = "Clamped sampling applies to layers 2 and up."; }
      samples.appendChild(el("p", "note", why));
    }
    panels.push(samples);

    // Linear combination of the layer below's filters.
    const lc = panel("lc", "Linear combination");
    if (layer.kinds.lc) {
      const corr = n.lc_vs_am ? n.lc_vs_am[u] : null;
      const k = study.lc_k ? "K = " + study.lc_k : "K";
      const what = entry.layer === 1 ? "layer 1: the filter itself"
        : "the " + k + " most strongly weighted filters of layer " + (entry.layer - 1) + ", combined";
      lc.appendChild(row([imageFigure(ctx, "lc", u, 0, big, what + " (vs AM: " + fmt(corr) + ")",
        name + ": linear combination of lower-layer filters", "", scaleFor(stack, layer, "lc", refsOf(layer, "lc", u)))]));
    } else {
      lc.appendChild(el("p", "note", model
        ? "No linear combination: it is defined for stacks of sigmoid layers, not for this model."
        : "No linear combination in this run's results."));
    }
    panels.push(lc);

    // The training inputs that most activate the unit.
    const ex = panel("exemplars", "Dataset exemplars");
    if (layer.kinds.exemplars) {
      const N = layer.kinds.exemplars.per_unit;
      const exActs = n.exemplar_activations ? n.exemplar_activations[u] : [];
      const exLabels = n.exemplar_labels ? n.exemplar_labels[u] : null;
      const eScale = scaleFor(stack, layer, "exemplars", refsOf(layer, "exemplars", u));
      const eTiles = [];
      for (let k = 0; k < N; k++) {
        const cls = exLabels ? "class " + exLabels[k] + " \u00b7 " : "";
        eTiles.push(imageFigure(ctx, "exemplars", u, k, small, cls + fmtAct(exActs[k], 4),
          name + ": exemplar " + (k + 1) + (exLabels ? ", class " + exLabels[k] : "") + ", " + word + " " +
          fmtAct(exActs[k], 4), "", eScale));
      }
      ex.appendChild(el("p", "caption", "The " + N + " inputs of " + (stack.exemplar_split || "the data set") +
        " with the highest " + word + " of this unit, highest first; captions: " +
        (exLabels ? "class and " : "") + word + "."));
      ex.appendChild(row(eTiles, "wrap"));
      ex.appendChild(legend(ctx, "exemplars", eScale));
    } else {
      ex.appendChild(el("p", "note", "No exemplars in this run's results."));
    }
    panels.push(ex);

    // The unit's row of the selectivity matrix.
    const sel = panel("selectivity", "Selectivity row");
    const sm = layer.meta.selectivity;
    if (layer.selectivity && u < sm.n) {
      const m = sm.n;
      const values = layer.selectivity.subarray(u * m, (u + 1) * m);
      const which = sm.argmax_other[u];
      const text = "diagonal " + fmt(sm.diagonal[u]) + "; largest other " + fmt(sm.max_other[u]) +
        (which === null ? "" : " (unit " + n.units[which] + ")") + "; margin " + fmt(marginOf(layer, u));
      sel.appendChild(barChart(values, u, name + ": selectivity row, " + text));
      sel.appendChild(el("p", "caption", (model ? "Activation (above its data-set minimum)" : "Post-sigmoid activation") +
        " of each of the first " + m + " units for this unit's AM input, each unit's column divided by its " +
        "sum over the " + m + " patterns (its share of its total response); bar height 0 to " +
        fmt(sm.scale_max) + ", the matrix's largest entry; orange is this unit. " + text + "."));
    } else if (sm) {
      sel.appendChild(el("p", "note", "Only the first " + sm.n + " units are in the selectivity matrix."));
    } else {
      sel.appendChild(el("p", "note", "No selectivity matrix in this run's results."));
    }
    panels.push(sel);

    // Pin and downloads.
    const tools = panel("tools", "Pin and download");
    const pinButton = el("button", "", isPinned(stack, entry, unitId) ? "Pinned" : "Pin this unit");
    pinButton.type = "button";
    pinButton.id = "pin-unit";
    pinButton.disabled = isPinned(stack, entry, unitId);
    pinButton.addEventListener("click", () => { pin(stack, entry, layer, u); });
    const downloads = [
      ["download-png", "Images (PNG, native size)", () => downloadPng(ctx, entry, u, 1)],
      ["download-png-large", "Images (PNG, 4" + TIMES + ")", () => downloadPng(ctx, entry, u, 4)],
      ["download-json", "Numbers (JSON)", () => downloadNumbers(stack, entry, layer, u, "json")],
      ["download-csv", "Numbers (CSV)", () => downloadNumbers(stack, entry, layer, u, "csv")],
    ].map(([id, text, action]) => {
      const b = el("button", "", text);
      b.type = "button";
      b.id = id;
      b.addEventListener("click", action);
      return b;
    });
    tools.appendChild(row([pinButton, ...downloads], "wrap tools"));
    panels.push(tools);
    return panels;
  }

  // ---- downloads -------------------------------------------------------------------------------------

  function save(blob, filename) {
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  function fileStem(stack, entry, unitId) {
    return (stack.name + "_layer" + entry.layer + "_unit" + unitId).replace(/[^A-Za-z0-9._-]+/g, "_");
  }

  // The unit's images on one sheet, one row per kind, at their native size times `zoom`, drawn as the
  // page shows them (the scale control's choice).
  function downloadPng(ctx, entry, u, zoom) {
    const layer = ctx.layer, shape = ctx.shape, gap = 2;
    const kinds = ["filters", "am_x", "samples", "samples_mean", "lc", "exemplars"].filter((k) => layer.kinds[k]);
    const widest = Math.max(...kinds.map((k) => layer.kinds[k].per_unit));
    const sheet = document.createElement("canvas");
    sheet.width = (widest * (shape.w + gap) - gap) * zoom;
    sheet.height = (kinds.length * (shape.h + gap) - gap) * zoom;
    const g = sheet.getContext("2d");
    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, sheet.width, sheet.height);
    g.imageSmoothingEnabled = false;
    const tile = document.createElement("canvas");
    tile.width = shape.w;
    tile.height = shape.h;
    const t = tile.getContext("2d");
    kinds.forEach((k, r) => {
      const refs = refsOf(layer, k, u);
      const scale = scaleFor(ctx.stack, layer, k, refs);
      refs.forEach((ref, i) => {
        paint(t, layer, ref, shape, scale);
        g.drawImage(tile, i * (shape.w + gap) * zoom, r * (shape.h + gap) * zoom, shape.w * zoom, shape.h * zoom);
      });
    });
    const unitId = layer.numbers.units[u];
    sheet.toBlob((blob) => {
      if (blob) { save(blob, fileStem(ctx.stack, entry, unitId) + (zoom > 1 ? "_x" + zoom : "") + ".png"); }
    }, "image/png");
  }

  function unitNumbers(stack, entry, layer, u) {
    const n = layer.numbers, out = {
      stack: stack.name, layer: entry.layer, layer_name: entry.name || null, unit: n.units[u],
      activation: actWord(stack),
    };
    Object.keys(n).forEach((k) => { if (k !== "units") { out[k] = n[k][u]; } });
    const s = layer.meta.selectivity;
    if (s && u < s.n) {
      out.selectivity_margin = s.margin[u];
      out.selectivity_diagonal = s.diagonal[u];
      out.selectivity_max_other = s.max_other[u];
      out.selectivity_row = Array.from(layer.selectivity.subarray(u * s.n, (u + 1) * s.n), (q) => q / 255 * s.scale_max);
    }
    return out;
  }

  function downloadNumbers(stack, entry, layer, u, format) {
    const values = unitNumbers(stack, entry, layer, u);
    const stem = fileStem(stack, entry, values.unit);
    if (format === "json") {
      save(new Blob([JSON.stringify(values, null, 1)], { type: "application/json" }), stem + ".json");
      return;
    }
    const lines = ["field,index,value"];
    const cell = (v) => {
      const s = v === null || v === undefined ? "" : String(v);
      return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    Object.keys(values).forEach((k) => {
      const v = values[k];
      if (Array.isArray(v)) { v.forEach((x, i) => lines.push(cell(k) + "," + i + "," + cell(x))); }
      else { lines.push(cell(k) + ",," + cell(v)); }
    });
    save(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }), stem + ".csv");
  }

  // ---- pins ------------------------------------------------------------------------------------------

  function isPinned(stack, entry, unitId) {
    const id = unitAddress(stack, entry.layer, unitId);
    return state.pins.some((p) => p.id === id);
  }

  // A pinned unit keeps copies of the images it shows, so its layer can be dropped from memory.
  function pin(stack, entry, layer, u) {
    const n = layer.numbers, unitId = n.units[u];
    const id = unitAddress(stack, entry.layer, unitId);
    if (state.pins.some((p) => p.id === id)) { return; }
    const shape = geometry(stack);
    const kinds = [layer.kinds.filters ? "filters" : null, "am_x", layer.kinds.lc && entry.layer > 1 ? "lc" : null]
      .filter((k) => k);
    const images = kinds.map((k) => {
      const i = k === "am_x" ? n.am_best[u] : 0;
      const canvas = canvasFor(shape, zoomFor(shape, 84), unitName(stack, entry, unitId) + ": " +
        (k === "am_x" ? "AM best" : k === "lc" ? "linear combination" : "filter"));
      paint(canvas.getContext("2d"), layer, imageRef(layer, k, u, i), shape, null);
      return { kind: k, canvas: canvas };
    });
    const ft = finetuneNote(stack, entry);
    state.pins.push({
      id: id, label: unitName(stack, entry, unitId), images: images,
      numbers: [
        ["restart cosine", n.restart_mean_cosine ? fmt(n.restart_mean_cosine[u]) : DASH],
        ["margin", fmt(marginOf(layer, u))],
        ["AM " + actWord(stack), fmtAct(n.am_activation[u][n.am_best[u]])],
        ["AM vs data", fmt(vsData(n, u))],
        ["dead or flat", flagged(n, u) ? (isDead(n, u) ? "dead" : "flat") : "no"],
      ],
      finetune: ft,
    });
    drawPins();
    writeAddress();
    const b = $("pin-unit");
    if (b) { b.textContent = "Pinned"; b.disabled = true; }
  }

  function unpin(id) {
    state.pins = state.pins.filter((p) => p.id !== id);
    drawPins();
    writeAddress();
    const b = $("pin-unit");
    if (b && state.layer && !isPinned(state.stack, state.entry, state.layer.numbers.units[state.unit])) {
      b.textContent = "Pin this unit";
      b.disabled = false;
    }
  }

  // Fine-tuning's effect on this layer's AM images, where the run measured it (MNIST stacks, layers 2+).
  function finetuneNote(stack, entry) {
    const ft = INDEX.finetune;
    if (!ft || isModel(stack) || stack.dataset !== "mnist") { return null; }
    const c = ft.am_cosine ? ft.am_cosine[stack.model + " L" + entry.layer] : undefined;
    if (c === undefined || c === null) { return null; }
    return "After supervised fine-tuning (hidden-layer rate " + fmt(ft.hidden_learning_rate, 3) +
      "), the cosine between this layer's AM images before and after: " + fmt(c, 5) +
      " (the fine-tuned images themselves are not in the results).";
  }

  function drawPins() {
    if (!pinsBox) { return; }
    const cards = state.pins.map((p) => {
      const card = el("article", "pin");
      card.dataset.unit = p.id;
      const head = el("h4");
      const link = el("a", "", p.label);
      link.href = "#unit=" + p.id.split("/").map(encodeURIComponent).join("/");
      head.appendChild(link);
      card.appendChild(head);
      card.appendChild(row(p.images.map((im) => {
        const fig = el("figure", "tile");
        fig.appendChild(im.canvas);
        fig.appendChild(el("figcaption", "", im.kind === "am_x" ? "AM best" : im.kind === "lc" ? "LC" : "filter"));
        return fig;
      })));
      const dl = el("dl", "numbers");
      p.numbers.forEach(([k, v]) => { dl.appendChild(el("dt", "", k)); dl.appendChild(el("dd", "", v)); });
      card.appendChild(dl);
      if (p.finetune) { card.appendChild(el("p", "note", p.finetune)); }
      const x = el("button", "unpin", "Unpin");
      x.type = "button";
      x.setAttribute("aria-label", "Unpin " + p.label);
      x.addEventListener("click", () => unpin(p.id));
      card.appendChild(x);
      return card;
    });
    pinsBox.replaceChildren(...cards);
    const box = $("pins-section");
    if (box) { box.hidden = cards.length === 0; }
  }

  // ---- choosing a unit -------------------------------------------------------------------------------

  let token = 0;

  function fillControls() {
    const s = state.stack;
    const first = document.querySelector('label[for="pick-dataset"]');
    const second = document.querySelector('label[for="pick-model"]');
    if (first) { first.textContent = isModel(s) ? "Model" : "Data set"; }
    if (second) { second.textContent = isModel(s) ? "Recipe" : "Model"; }
    pick.dataset.value = group(s);
    pick.model.replaceChildren();
    stacks.filter((t) => group(t) === group(s)).forEach((t) => option(pick.model, t.name, t.model_label));
    pick.model.value = s.name;
    pick.layer.replaceChildren();
    s.layers.forEach((l) => option(pick.layer, l.layer, isModel(s) && l.name ? l.name : "Layer " + l.layer));
    pick.layer.value = String(state.entry.layer);
  }

  function fillUnits() {
    const n = state.layer.numbers;
    pick.unit.replaceChildren();
    n.units.forEach((id, i) => option(pick.unit, i,
      "Unit " + id + (flagged(n, i) ? (isDead(n, i) ? " (dead)" : " (flat)") : "")));
    pick.unit.value = String(state.unit);
  }

  // The page's address names the unit shown once the reader uses the browser, or when it already named a
  // unit; a link to a section (#figures) is left as it is until then.
  let ownsAddress = !location.hash || location.hash.indexOf("#unit=") === 0;

  function writeAddress() {
    if (!state.layer || !ownsAddress) { return; }
    let hash = "#unit=" + [state.stack.name, String(state.entry.layer), String(state.layer.numbers.units[state.unit])]
      .map(encodeURIComponent).join("/");
    if (state.pins.length) {
      hash += "&pins=" + state.pins.map((p) => p.id.split("/").map(encodeURIComponent).join("/")).join(",");
    }
    lastHash = hash;
    try {
      history.replaceState(null, "", hash);
    } catch (err) {
      // Some browsers refuse history changes on file:// pages; the address is then not updated.
    }
  }

  let drawToken = 0;

  // Show unit index `u` of the open layer, once its chunk of images is loaded.
  async function showUnit(u, focusThumb) {
    const stack = state.stack, entry = state.entry, layer = state.layer;
    state.unit = Math.max(0, Math.min(u, entry.n_units - 1));
    pick.unit.value = String(state.unit);
    const mine = ++drawToken;
    try {
      await ensureChunk(layer, state.unit);
    } catch (err) {
      if (mine === drawToken) {
        status.textContent = "Could not load the images of unit " + layer.numbers.units[state.unit] + ": " + err.message;
      }
      return;
    }
    if (mine !== drawToken || layer !== state.layer) { return; }  // a newer choice was made meanwhile
    // Redrawing removes a focused button of the old view; focus then stays in the browser, so the arrow
    // keys go on working, instead of falling to the page.
    const hadFocus = view.contains(document.activeElement);
    view.replaceChildren(...buildView(stack, entry, layer, state.unit));
    if (hadFocus) { $("unit-browser").focus({ preventScroll: true }); }
    const unitId = layer.numbers.units[state.unit];
    view.dataset.shown = unitAddress(stack, entry.layer, unitId);
    status.textContent = stack.dataset_label + ", " + stack.model_label + ", " + layerLabel(stack, entry) +
      ", unit " + unitId + " (" + (state.unit + 1) + " of " + entry.n_units + ")";
    const b = markCurrent();
    if (focusThumb && b) { b.focus(); }
    writeAddress();
  }

  // Open a layer (loading its file when needed) and show unit index `u` of it.
  async function open(stack, layerNumber, u, options) {
    const opts = options || {};
    const entry = stack.layers.find((l) => l.layer === layerNumber) || stack.layers[0];
    const mine = ++token;
    state.stack = stack;
    state.entry = entry;
    fillControls();
    const sameLayer = state.layer && grid.dataset.layer === stack.name + "/" + entry.layer;
    if (!sameLayer) {
      status.textContent = "Loading " + stack.label + ", " + layerLabel(stack, entry) + " (" + entry.n_units + " units)\u2026";
    }
    let layer;
    try {
      layer = await getLayer(entry);
    } catch (err) {
      if (mine === token) {
        status.textContent = "Could not open " + stack.label + ", " + layerLabel(stack, entry) + ": " + err.message;
        view.dataset.shown = "";
      }
      return;
    }
    if (mine !== token) { return; }  // a newer choice was made while this layer loaded
    state.layer = layer;
    if (!sameLayer) {
      buildIndex(stack, entry, layer);
    }
    state.unit = Math.max(0, Math.min(u, entry.n_units - 1));
    fillUnits();
    await showUnit(state.unit, false);
    if (opts.scroll) {
      const target = $("unit-browser") || view;
      target.scrollIntoView({ block: "start" });
    }
  }

  // ---- links -----------------------------------------------------------------------------------------

  let lastHash = "";

  // "#unit=STACK/LAYER/UNIT[&pins=S/L/U,...]" -> {stack, layer, unitIndex} or an error message.
  function resolve(address) {
    const parts = address.split("/").map((p) => { try { return decodeURIComponent(p); } catch (e) { return p; } });
    if (parts.length !== 3) {
      return { error: "\u201c" + address + "\u201d is not STACK/LAYER/UNIT" };
    }
    const stack = stacks.find((t) => t.name === parts[0]);
    if (!stack) {
      return { error: "there is no stack \u201c" + parts[0] + "\u201d (this report has " +
        stacks.map((t) => t.name).join(", ") + ")" };
    }
    const entry = stack.layers.find((l) => String(l.layer) === parts[1]);
    if (!entry) {
      return { error: stack.name + " has no layer " + parts[1] + " (its layers: " +
        stack.layers.map((l) => l.layer).join(", ") + ")" };
    }
    if (!/^\d+$/.test(parts[2])) { return { error: "\u201c" + parts[2] + "\u201d is not a unit number" }; }
    return { stack: stack, entry: entry, unitId: Number(parts[2]) };
  }

  async function unitIndexOf(found) {
    const layer = await getLayer(found.entry);
    const u = layer.numbers.units.indexOf(found.unitId);
    return { layer: layer, u: u };
  }

  function reportLinkError(message) {
    if (!linkError) { return; }
    linkError.textContent = message ? "This link does not name a unit of this report: " + message +
      ". Showing " + (state.layer ? "the unit below" : "the first unit") + " instead." : "";
    linkError.hidden = !message;
  }

  async function followHash(scroll) {
    const hash = location.hash;
    lastHash = hash;
    const m = /^#unit=([^&]*)(?:&pins=(.*))?$/.exec(hash);
    if (!m) {
      if (hash && hash.indexOf("unit=") >= 0) {
        reportLinkError("\u201c" + hash + "\u201d is not #unit=STACK/LAYER/UNIT");
      }
      return false;
    }
    const found = resolve(m[1]);
    if (found.error) {
      reportLinkError(found.error);
      return false;
    }
    let u;
    try {
      u = (await unitIndexOf(found)).u;
    } catch (err) {
      reportLinkError(err.message);
      return false;
    }
    if (u < 0) {
      const units = (await getLayer(found.entry)).numbers.units;
      reportLinkError(found.stack.name + " layer " + found.entry.layer + " holds no unit " + found.unitId +
        " (its studied units run from " + units[0] + " to " + units[units.length - 1] + ")");
      return false;
    }
    reportLinkError("");
    if (m[2]) { await restorePins(m[2]); }
    await open(found.stack, found.entry.layer, u, { scroll: scroll });
    return true;
  }

  async function restorePins(list) {
    const wanted = list.split(",").filter((x) => x);
    for (const address of wanted) {
      const found = resolve(address);
      if (found.error) { continue; }
      try {
        const { layer, u } = await unitIndexOf(found);
        if (u >= 0) {
          await ensureChunk(layer, u);
          pin(found.stack, found.entry, layer, u);
        }
      } catch (err) {
        // A pin whose layer cannot be loaded is left out; the status line says why for the main unit.
      }
    }
  }

  window.addEventListener("hashchange", () => {
    if (location.hash === lastHash) { return; }
    ownsAddress = location.hash.indexOf("#unit=") === 0;
    if (ownsAddress || location.hash.indexOf("unit=") >= 0) { followHash(true); }
  });

  // Any use of the browser's controls makes the address follow the unit shown.
  section.addEventListener("input", () => { ownsAddress = true; }, true);
  section.addEventListener("click", (e) => {
    if (e.target instanceof Element && e.target.closest("button")) { ownsAddress = true; }
  }, true);

  // ---- controls --------------------------------------------------------------------------------------

  function step(delta, focusThumb) {
    const order = visibleOrder();
    if (!order.length) { return; }
    const at = order.indexOf(state.unit);
    const next = at < 0 ? order[0] : order[(at + delta + order.length) % order.length];
    showUnit(next, focusThumb);
  }

  Array.from(new Set(stacks.map(group))).forEach((g) => {
    const s = stacks.find((t) => group(t) === g);
    option(pick.dataset, g, s.dataset_label);
  });

  pick.dataset.addEventListener("change", () => {
    const same = stacks.find((t) => group(t) === pick.dataset.value && t.model === state.stack.model);
    const any = stacks.find((t) => group(t) === pick.dataset.value);
    open(same || any, state.entry.layer, state.unit);
  });
  pick.model.addEventListener("change", () => {
    open(stacks.find((t) => t.name === pick.model.value), state.entry.layer, state.unit);
  });
  pick.layer.addEventListener("change", () => { open(state.stack, Number(pick.layer.value), state.unit); });
  pick.unit.addEventListener("change", () => { showUnit(Number(pick.unit.value), false); });
  $("prev-unit").addEventListener("click", () => step(-1, false));
  $("next-unit").addEventListener("click", () => step(1, false));
  grid.addEventListener("click", (e) => {
    const b = e.target instanceof Element ? e.target.closest("button.thumb") : null;
    if (b) { showUnit(Number(b.dataset.index), false); }
  });
  [controls.sort, controls.filter].forEach((c) => { if (c) { c.addEventListener("change", arrangeIndex); } });
  if (controls.order) {
    controls.order.addEventListener("click", () => {
      const desc = controls.order.dataset.order !== "desc";
      controls.order.dataset.order = desc ? "desc" : "asc";
      controls.order.textContent = desc ? "Highest first" : "Lowest first";
      controls.order.setAttribute("aria-pressed", desc ? "true" : "false");
      arrangeIndex();
    });
  }
  if (controls.scale) {
    controls.scale.addEventListener("change", () => {
      if (!state.layer) { return; }
      buildIndex(state.stack, state.entry, state.layer);
      showUnit(state.unit, false);
    });
  }
  // Arrow keys walk the units only while the unit browser has focus, and never inside a form control.
  section.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) { return; }
    const t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.isContentEditable)) {
      return;
    }
    const onThumb = t instanceof Element && t.classList.contains("thumb");
    if (["ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp"].indexOf(e.key) >= 0) { ownsAddress = true; }
    if (e.key === "ArrowRight" || e.key === "ArrowDown") { step(1, onThumb); e.preventDefault(); }
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") { step(-1, onThumb); e.preventDefault(); }
  });

  // Start from the unit the address names, else the first unit of the first stack.
  followHash(Boolean(location.hash)).then((ok) => {
    if (!ok) { open(stacks[0], stacks[0].layers[0].layer, 0); }
  });
})();
