/* unitlens report: the unit explorer.
 *
 * Reads window.UNITLENS_REPORT_DATA (assigned by data.js, written by unitlens.render.report.builder).
 * Images arrive as zlib-compressed, base64-encoded uint8 arrays, one per stack / layer / kind, already
 * scaled for display (each image on its own; signed ones grey at zero). An image is channels x h x w
 * levels, channel-major (a grey image is one plane; an RGB one its red, green and blue planes in turn).
 * Stacks are the paper's DBN/SDAE stacks (kind "paper") or a user's own model (kind "model", one stack
 * per AM recipe, layers with names). They are inflated on demand with
 * DecompressionStream, cached, and drawn on <canvas> at their native size; CSS enlarges them with
 * image-rendering: pixelated. No network access: everything comes from data.js.
 */
(function () {
  "use strict";

  const DATA = window.UNITLENS_REPORT_DATA;
  const $ = (id) => document.getElementById(id);
  const view = $("unit-view");
  const status = $("explorer-status");
  const pick = {
    dataset: $("pick-dataset"),
    model: $("pick-model"),
    layer: $("pick-layer"),
    unit: $("pick-unit"),
  };
  if (!view || !status) {
    return;
  }

  function disableControls(message) {
    status.textContent = message;
    Object.values(pick).forEach((s) => { if (s) { s.disabled = true; } });
    ["prev-unit", "next-unit"].forEach((id) => { const b = $(id); if (b) { b.disabled = true; } });
  }

  if (!DATA || !Array.isArray(DATA.stacks) || DATA.stacks.length === 0) {
    disableControls("No explorer data: data.js is missing or holds no stacks.");
    return;
  }
  if (typeof DecompressionStream === "undefined") {
    disableControls("This browser cannot unpack the report's images (it lacks DecompressionStream: " +
      "use Chrome 80+, Firefox 113+ or Safari 16.4+).");
    return;
  }

  const stacks = DATA.stacks;
  const state = { stack: stacks[0], layer: stacks[0].layers[0], unit: 0 };

  // Height, width and channels of a stack's images (data.js before colour images had only image_shape).
  function geometry(stack) {
    const hw = stack.spatial || stack.image_shape.slice(-2);
    return { h: hw[0], w: hw[1], c: stack.channels || 1 };
  }

  function isModel(stack) {
    return stack.kind === "model";
  }

  // The first picker's groups: a data set of the paper's stacks, or one user model's recipes.
  function group(stack) {
    return stack.group || stack.dataset;
  }

  function layerLabel(layer) {
    return layer.name || "layer " + layer.layer;
  }

  // ---- helpers ---------------------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) { return "—"; }
    const d = digits === undefined ? 3 : digits;
    const a = Math.abs(x);
    if (a !== 0 && (a >= 1000 || a < Math.pow(10, -d))) { return x.toPrecision(d); }
    return x.toFixed(d);
  }

  // Activations: six significant digits, enough to show how far restarts that agree still differ.
  function fmtAct(x, digits) {
    return x === null || x === undefined || Number.isNaN(x) ? "—" : x.toPrecision(digits || 6);
  }

  function option(select, value, text) {
    const o = document.createElement("option");
    o.value = String(value);
    o.textContent = text;
    select.appendChild(o);
  }

  function unique(values) {
    return values.filter((v, i) => values.indexOf(v) === i);
  }

  // ---- decoding --------------------------------------------------------------------------------------

  const cache = new Map();

  async function inflate(b64) {
    const text = atob(b64);
    const packed = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) { packed[i] = text.charCodeAt(i); }
    // "deflate" in the Compression Streams standard is the zlib format that Python's zlib writes.
    const stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  function bytes(stack, layer, key) {
    const id = stack.name + "|" + layer.layer + "|" + key;
    let promise = cache.get(id);
    if (!promise) {
      const text = key === "selectivity" ? layer.selectivity.data : layer.images[key].data;
      promise = inflate(text);
      cache.set(id, promise);
    }
    return promise;
  }

  // ---- drawing ---------------------------------------------------------------------------------------

  function scaleFor(shape, target) {
    return Math.max(1, Math.round(target / Math.max(shape.h, shape.w)));
  }

  // One image (image `index` of a decoded array, shape.c planes of shape.h x shape.w levels) on a canvas,
  // with an optional caption.
  function imageFigure(array, index, shape, scale, caption, label, extraClass) {
    const h = shape.h, w = shape.w, c = shape.c;
    const fig = el("figure", "tile" + (extraClass ? " " + extraClass : ""));
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    canvas.style.width = w * scale + "px";
    canvas.style.height = h * scale + "px";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", label);
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(w, h);
    const plane = h * w;
    const offset = index * c * plane;
    // Grey: one plane for red, green and blue alike; RGB: the three planes in turn.
    const green = c === 3 ? plane : 0, blue = c === 3 ? 2 * plane : 0;
    for (let i = 0; i < plane; i++) {
      const o = 4 * i;
      image.data[o] = array[offset + i];
      image.data[o + 1] = array[offset + green + i];
      image.data[o + 2] = array[offset + blue + i];
      image.data[o + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    fig.appendChild(canvas);
    if (caption) { fig.appendChild(el("figcaption", "", caption)); }
    return fig;
  }

  // A unit's selectivity row: bar j is the (column-normalised) activation of unit j for this unit's x*.
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

  function panel(id, title) {
    const section = el("section", "panel");
    section.id = "panel-" + id;
    const heading = el("h3", "", title);
    heading.id = "panel-" + id + "-h";
    section.setAttribute("aria-labelledby", heading.id);
    section.appendChild(heading);
    return section;
  }

  function row(children, className) {
    const div = el("div", "row" + (className ? " " + className : ""));
    children.forEach((c) => div.appendChild(c));
    return div;
  }

  function definitionList(pairs) {
    const dl = el("dl", "numbers");
    pairs.forEach(([term, value, note]) => {
      dl.appendChild(el("dt", "", term));
      const dd = el("dd", "", value);
      if (note) { dd.appendChild(el("span", "flag", " " + note)); }
      dl.appendChild(dd);
    });
    return dl;
  }

  // ---- the view of one unit --------------------------------------------------------------------------

  function buildView(stack, layer, u, arrays, selectivity) {
    const shape = geometry(stack);
    const big = scaleFor(shape, 168);
    const small = scaleFor(shape, 84);
    const num = layer.numbers;
    const unitId = num.units[u];
    const model = isModel(stack);
    const name = (model ? stack.dataset_label + " (" + stack.model_label + ") " + layerLabel(layer)
      : stack.model_label + " layer " + layer.layer) + " unit " + unitId;
    // A user's model: a unit's activation is its output (after a ReLU, say); the stacks' is pre-sigmoid.
    const actWord = model ? "activation" : "pre-sigmoid activation";
    const R = layer.n_restarts;
    const best = num.am_best[u];
    const acts = num.am_activation[u];
    const panels = [];
    const at = (key, i) => layer.images[key].per_unit * u + i;

    // Headline: the filter (layer 1) and the best AM optimum.
    const main = panel("main", arrays.filters ? "Filter and AM optimum" : "Activation maximization");
    const flagged = num.flat && num.flat[u] === 1;
    if (flagged) {
      const dead = num.dead && num.dead[u] === 1;
      const warn = el("p", "warning", (dead ? "Dead unit: it cannot be moved (its gradient at every start " +
        "vanishes, or its activation is constant over the data), so the AM image below is its random start. "
        : "Flat unit: every restart reaches the same activation with a different pattern, so the AM image " +
        "below is one arbitrary point of a plateau. ") +
        "Each image is stretched to full contrast on its own: it is not a feature.");
      warn.setAttribute("role", "note");
      main.appendChild(warn);
    }
    const heads = [];
    if (arrays.filters) {
      heads.push(imageFigure(arrays.filters, at("filters", 0), shape, big,
        "filter (weight row " + unitId + ")", name + ": filter", "headline"));
    }
    heads.push(imageFigure(arrays.am_x, at("am_x", best), shape, big,
      "AM best: restart " + (best + 1) + " of " + R + ", " + actWord + " " + fmtAct(acts[best]) +
        (flagged ? " (not a feature)" : ""),
      name + ": best activation-maximization input", "headline"));
    main.appendChild(row(heads));
    panels.push(main);

    // The unit's numbers.
    const info = panel("numbers", "Numbers");
    const finite = acts.filter((a) => a !== null);
    const steps = num.am_steps ? num.am_steps[u] : null;
    const converged = num.am_converged ? num.am_converged[u] : null;
    const conc = num.energy_concentration ? num.energy_concentration[u] : null;
    const pairs = [
      ["Unit", String(unitId) + " (" + (u + 1) + " of " + layer.n_units + " studied)"],
      ["Mean restart cosine", num.restart_mean_cosine ? fmt(num.restart_mean_cosine[u]) : "—"],
      ["Restart activations", finite.length ? fmtAct(Math.min(...finite)) + " to " + fmtAct(Math.max(...finite)) : "—"],
      ["Energy concentration", fmt(conc),
        // The study's threshold, from its summary; null (no summary): no verdict.
        conc !== null && layer.degenerate_threshold !== null && conc > layer.degenerate_threshold
          ? "(degenerate: energy in a few pixels)" : ""],
    ];
    // A user's model has neither a linear combination nor clamped samples to compare with.
    if (!model || num.lc_vs_am) {
      pairs.push(["LC vs AM (Pearson)", num.lc_vs_am ? fmt(num.lc_vs_am[u]) : "—"]);
    }
    if (!model || num.samples_vs_am) {
      pairs.push(["Samples vs AM (Pearson)", num.samples_vs_am ? fmt(num.samples_vs_am[u]) : "—"]);
    }
    if (steps) {
      const capped = converged ? converged.filter((c) => c === 0).length : 0;
      // A recipe without a stopping rule (lucid: a fixed number of Adam steps) never "converges": all of
      // its restarts run to the end, which is not a warning.
      const fixed = converged && capped === converged.length && Math.min(...steps) === Math.max(...steps);
      pairs.push(["AM steps", Math.min(...steps) + " to " + Math.max(...steps),
        capped && !fixed ? "(" + capped + " stopped by the cap)" : ""]);
    }
    if (num.am_stationarity) {
      // NaN (null here) where a recipe has no constraint surface to be stationary on: shown as a dash.
      const st = num.am_stationarity[u].filter((x) => x !== null);
      pairs.push(["AM stationarity", st.length ? fmt(Math.min(...st)) + " to " + fmt(Math.max(...st)) : "—"]);
    }
    if (layer.selectivity && u < layer.selectivity.n) {
      pairs.push(["Selectivity margin", fmt(layer.selectivity.margin ? layer.selectivity.margin[u] : null),
        layer.selectivity.margin && layer.selectivity.margin[u] <= 0 ? "(another unit claims this pattern)" : ""]);
    }
    if (num.flat) {
      pairs.push(["Dead or flat", flagged ? (num.dead[u] ? "dead" : "flat (plateau)") : "no"]);
    }
    info.appendChild(definitionList(pairs));
    panels.push(info);

    // Every restart, with its final activation.
    const restarts = panel("restarts", "All " + R + " AM restarts");
    const tiles = [];
    for (let r = 0; r < R; r++) {
      let caption = "r" + (r + 1) + ": " + fmtAct(acts[r]) + (r === best ? " ★" : "");
      if (converged && converged[r] === 0) { caption += " (capped)"; }
      tiles.push(imageFigure(arrays.am_x, at("am_x", r), shape, small, caption,
        name + ": restart " + (r + 1) + ", activation " + fmtAct(acts[r]), r === best ? "best" : ""));
    }
    restarts.appendChild(row(tiles, "wrap"));
    panels.push(restarts);

    // Clamped samples (DBN, layer >= 2) and their mean.
    const samples = panel("samples", "Samples with the unit clamped on");
    if (arrays.samples) {
      const S = layer.images.samples.per_unit;
      const sTiles = [];
      for (let s = 0; s < S; s++) {
        sTiles.push(imageFigure(arrays.samples, at("samples", s), shape, small, "",
          name + ": clamped sample " + (s + 1)));
      }
      samples.appendChild(row(sTiles, "wrap"));
      if (arrays.samples_mean) {
        const corr = num.samples_vs_am ? num.samples_vs_am[u] : null;
        samples.appendChild(row([imageFigure(arrays.samples_mean, at("samples_mean", 0), shape, big,
          "mean of " + S + " samples (vs AM: " + fmt(corr) + ")", name + ": mean of the clamped samples")]));
      }
    } else {
      let why = "No clamped samples in this run's results.";
      if (model) { why = "Clamped sampling is defined for DBNs, not for this model."; }
      else if (stack.model === "sdae") { why = "The SDAE is not a generative model: it has no clamped samples."; }
      else if (layer.layer === 1) { why = "Clamped sampling applies to layers 2 and up."; }
      samples.appendChild(el("p", "note", why));
    }
    panels.push(samples);

    // Linear combination of the layer below's filters.
    const lc = panel("lc", "Linear combination");
    if (arrays.lc) {
      const corr = num.lc_vs_am ? num.lc_vs_am[u] : null;
      lc.appendChild(row([imageFigure(arrays.lc, at("lc", 0), shape, big,
        (layer.layer === 1 ? "layer 1: the filter itself" : "top-K lower filters") + " (vs AM: " + fmt(corr) + ")",
        name + ": linear combination of lower-layer filters")]));
    } else {
      lc.appendChild(el("p", "note", model
        ? "No linear combination: it is defined for stacks of sigmoid layers, not for this model."
        : "No linear combination in this run's results."));
    }
    panels.push(lc);

    // The training inputs that most activate the unit.
    const ex = panel("exemplars", "Dataset exemplars");
    if (arrays.exemplars) {
      const N = layer.images.exemplars.per_unit;
      const exActs = num.exemplar_activations ? num.exemplar_activations[u] : [];
      // Labelled data: each exemplar's class beside its activation.
      const exLabels = num.exemplar_labels ? num.exemplar_labels[u] : null;
      const eTiles = [];
      for (let k = 0; k < N; k++) {
        const cls = exLabels ? "class " + exLabels[k] + " · " : "";
        eTiles.push(imageFigure(arrays.exemplars, at("exemplars", k), shape, small, cls + fmtAct(exActs[k], 4),
          name + ": exemplar " + (k + 1) + (exLabels ? ", class " + exLabels[k] : "") + ", activation " +
          fmtAct(exActs[k], 4)));
      }
      ex.appendChild(row(eTiles, "wrap"));
    } else {
      ex.appendChild(el("p", "note", "No exemplars in this run's results."));
    }
    panels.push(ex);

    // The unit's row of the selectivity matrix.
    const sel = panel("selectivity", "Selectivity row");
    if (selectivity && u < layer.selectivity.n) {
      const n = layer.selectivity.n;
      const values = selectivity.subarray(u * n, (u + 1) * n);
      const other = layer.selectivity.max_other[u];
      const which = layer.selectivity.argmax_other[u];
      const margin = layer.selectivity.margin ? layer.selectivity.margin[u] : null;
      const text = "diagonal " + fmt(layer.selectivity.diagonal[u]) + "; largest other " + fmt(other) +
        (which === null ? "" : " (unit " + num.units[which] + ")") + "; margin " + fmt(margin);
      sel.appendChild(barChart(values, u, name + ": selectivity row, " + text));
      sel.appendChild(el("p", "caption", (model ? "Activation (above its data-set minimum)" : "Post-sigmoid activation") +
        " of each of the first " + n + " units for " +
        "this unit's AM input, each unit's column divided by its sum over the " + n + " patterns (its share " +
        "of its total response); bar height 0 to " + fmt(layer.selectivity.scale_max) + ", the matrix's " +
        "largest entry; orange is this unit. " + text + "."));
    } else if (layer.selectivity) {
      sel.appendChild(el("p", "note", "Only the first " + layer.selectivity.n + " units are in the selectivity matrix."));
    } else {
      sel.appendChild(el("p", "note", "No selectivity matrix in this run's results."));
    }
    panels.push(sel);
    return panels;
  }

  let token = 0;

  async function render() {
    const mine = ++token;
    const stack = state.stack, layer = state.layer, u = state.unit;
    const keys = Object.keys(layer.images);
    let arrays, selectivity;
    try {
      const decoded = await Promise.all(keys.map((k) => bytes(stack, layer, k)));
      selectivity = layer.selectivity ? await bytes(stack, layer, "selectivity") : null;
      arrays = {};
      keys.forEach((k, i) => { arrays[k] = decoded[i]; });
    } catch (err) {
      if (mine === token) { status.textContent = "Could not unpack the images: " + err; }
      return;
    }
    if (mine !== token) { return; }  // a newer selection was made while this one decoded
    view.replaceChildren(...buildView(stack, layer, u, arrays, selectivity));
    const unitId = layer.numbers.units[u];
    view.dataset.shown = stack.name + "/" + layer.layer + "/" + unitId;
    status.textContent = stack.dataset_label + ", " + stack.model_label + ", " +
      (isModel(stack) ? layerLabel(layer) : "layer " + layer.layer) +
      ", unit " + unitId + " (" + (u + 1) + " of " + layer.n_units + ")";
    try {
      history.replaceState(null, "", "#unit=" + view.dataset.shown);
    } catch (err) {
      // Some browsers refuse history changes on file:// pages; the link is a convenience only.
    }
  }

  // ---- controls --------------------------------------------------------------------------------------

  function fillControls() {
    const s = state.stack;
    // A user's model is picked by name, then recipe; the paper's stacks by data set, then model.
    const first = document.querySelector('label[for="pick-dataset"]');
    const second = document.querySelector('label[for="pick-model"]');
    if (first) { first.textContent = isModel(s) ? "Model" : "Data set"; }
    if (second) { second.textContent = isModel(s) ? "Recipe" : "Model"; }
    pick.dataset.value = group(s);
    pick.model.replaceChildren();
    stacks.filter((t) => group(t) === group(s)).forEach((t) => option(pick.model, t.name, t.model_label));
    pick.model.value = s.name;
    pick.layer.replaceChildren();
    s.layers.forEach((l) => option(pick.layer, l.layer, l.name && isModel(s) ? l.name : "Layer " + l.layer));
    pick.layer.value = String(state.layer.layer);
    pick.unit.replaceChildren();
    const flat = state.layer.numbers.flat;
    state.layer.numbers.units.forEach((id, i) => option(pick.unit, i,
      "Unit " + id + (flat && flat[i] ? (state.layer.numbers.dead[i] ? " (dead)" : " (flat)") : "")));
    pick.unit.value = String(state.unit);
  }

  function choose(stack, layerNumber, unitIndex) {
    state.stack = stack;
    state.layer = stack.layers.find((l) => l.layer === layerNumber) || stack.layers[0];
    state.unit = Math.max(0, Math.min(unitIndex, state.layer.n_units - 1));
    fillControls();
    render();
  }

  function step(delta) {
    const n = state.layer.n_units;
    choose(state.stack, state.layer.layer, (state.unit + delta + n) % n);
  }

  unique(stacks.map(group)).forEach((g) => {
    const s = stacks.find((t) => group(t) === g);
    option(pick.dataset, g, s.dataset_label);
  });

  pick.dataset.addEventListener("change", () => {
    const same = stacks.find((t) => group(t) === pick.dataset.value && t.model === state.stack.model);
    const any = stacks.find((t) => group(t) === pick.dataset.value);
    choose(same || any, state.layer.layer, state.unit);
  });
  pick.model.addEventListener("change", () => {
    choose(stacks.find((t) => t.name === pick.model.value), state.layer.layer, state.unit);
  });
  pick.layer.addEventListener("change", () => {
    choose(state.stack, Number(pick.layer.value), state.unit);
  });
  pick.unit.addEventListener("change", () => {
    choose(state.stack, state.layer.layer, Number(pick.unit.value));
  });
  $("prev-unit").addEventListener("click", () => step(-1));
  $("next-unit").addEventListener("click", () => step(1));
  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) { return; }
    const t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.isContentEditable)) {
      return;  // the control handles its own arrows
    }
    if (e.key === "ArrowRight") { step(1); e.preventDefault(); }
    else if (e.key === "ArrowLeft") { step(-1); e.preventDefault(); }
  });

  // Start from the unit named in the address (#unit=STACK/LAYER/UNIT), else the first one.
  const match = /^#unit=([^/]+)\/(\d+)\/(\d+)$/.exec(decodeURIComponent(location.hash));
  const linked = match ? stacks.find((t) => t.name === match[1]) : null;
  if (linked) {
    const layer = linked.layers.find((l) => l.layer === Number(match[2])) || linked.layers[0];
    const index = layer.numbers.units.indexOf(Number(match[3]));
    choose(linked, layer.layer, Math.max(0, index));
  } else {
    choose(stacks[0], stacks[0].layers[0].layer, 0);
  }
})();
