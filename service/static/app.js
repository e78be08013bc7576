// ConvServe's web page: one view per task, talking to this server's own API (no other host).
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);
const $$ = (sel, el = document) => Array.from(el.querySelectorAll(sel));
const keyInput = $("#api-key");
keyInput.value = sessionStorage.getItem("convserve-key") || "";
keyInput.addEventListener("change", () => {
  sessionStorage.setItem("convserve-key", keyInput.value);
  loadModels();
});

// ---- talking to the API -------------------------------------------------------------------------
async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (keyInput.value) headers["X-API-Key"] = keyInput.value;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body.error) message = body.error.message || JSON.stringify(body.error);
    } catch (e) { /* not JSON: keep the status line */ }
    throw new Error(message);
  }
  return response;
}

function form(files) {
  const data = new FormData();
  for (const f of files) data.append(files.length > 1 ? "files" : "file", f.blob, f.name);
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  return q.toString();
}

// ---- the parts every view shares ----------------------------------------------------------------
const views = {};

function view(id) {
  const el = $(`#view-${id}`);
  const v = { el, files: [], error: $(".error", el), info: $(".info", el), model: $(".model", el) };
  v.setFiles = (files) => {
    v.files = files;
    v.error.textContent = "";
    v.el.dataset.input = files.map((f) => f.name).join(", ");
    if (v.onInput) v.onInput(files);
  };
  v.fail = (err) => { v.error.textContent = `Error: ${err.message}`; v.el.dataset.state = "error"; };
  v.done = (model, timings) => {
    const t = timings ? ` · total ${Math.round(timings.total_ms)} ms (inference ${Math.round(timings.inference_ms)} ms)` : "";
    const provider = (model.provider || "").replace("ExecutionProvider", "");
    v.info.textContent = `${model.name} v${model.version} on ${provider}${t}`;
    v.el.dataset.state = "done";
  };
  v.warn = (list) => {
    const ul = $(".warnings", el);
    ul.replaceChildren(...(list || []).map((w) => Object.assign(document.createElement("li"), { textContent: w })));
  };
  $(".file", el).addEventListener("change", (e) => v.setFiles(Array.from(e.target.files).map((f) => ({ blob: f, name: f.name }))));
  const drop = $(".drop", el);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    v.setFiles(Array.from(e.dataTransfer.files).map((f) => ({ blob: f, name: f.name })));
  });
  for (const b of $$("[data-sample]", el)) {
    b.addEventListener("click", async () => {
      try {
        const names = b.dataset.sample.split(",");
        const files = [];
        for (const n of names) {
          const r = await api(`examples/${n}`);
          files.push({ blob: await r.blob(), name: n.split("/").pop() });
        }
        v.setFiles(files);
        await v.run();
      } catch (err) { v.fail(err); }
    });
  }
  $(".run", el).addEventListener("click", async () => {
    if (!v.files.length) { v.error.textContent = "Choose a file or a sample first."; return; }
    v.el.dataset.state = "running";
    try { await v.run(); } catch (err) { v.fail(err); }
  });
  views[id] = v;
  return v;
}

async function loadModels() {
  let body;
  try {
    body = await (await api("models")).json();
  } catch (err) {
    for (const v of Object.values(views)) v.fail(err);
    return;
  }
  for (const v of Object.values(views)) {
    const task = v.el.dataset.task;
    const keep = v.model.querySelector('option[value=""]');
    const options = body.models.filter((m) => m.task === task).map((m) => {
      const o = document.createElement("option");
      o.value = m.name;
      o.textContent = `${m.name} v${m.version}${m.ready ? "" : ` (${m.status})`}`;
      o.disabled = !m.ready;
      return o;
    });
    v.model.replaceChildren(...(keep ? [keep] : []), ...options);
    const def = body.defaults && body.defaults[task];
    if (def && !keep) v.model.value = def;
    if (!options.length) v.error.textContent = `No ${task} model is loaded on this server.`;
  }
}

function objectUrl(blob) { return URL.createObjectURL(blob); }
function dataUrl(b64, type = "image/png") { return `data:${type};base64,${b64}`; }
function b64Blob(b64, type) { return new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], { type }); }

// Browsers draw PNG, JPEG, WebP and GIF, not TIFF (16-bit, float, stacks) nor, in Chromium, HEIC: what the
// browser cannot draw, the server renders as an 8-bit PNG (POST /preview) - so a user sees what they sent.
// ``like``: another image shown this way, whose black and white levels this one keeps (a result beside its input).
function show(img, blob, like = null) {
  img.dataset.preview = "browser";
  delete img.dataset.range;
  img.onerror = async () => {
    img.onerror = null;
    const range = like && like.dataset.range ? like.dataset.range.split(",") : null;
    try {
      const q = range ? `?${query({ low: range[0], high: range[1] })}` : "";
      const r = await api(`preview${q}`, { method: "POST", body: form([{ blob, name: "image" }]) });
      img.dataset.range = r.headers.get("X-Display-Range") || "";
      img.dataset.preview = "server";
      img.src = objectUrl(await r.blob());
    } catch (err) { img.dataset.preview = "none"; img.alt = `cannot show this file: ${err.message}`; }
  };
  img.src = objectUrl(blob);
}

async function download(v, path, name) {
  try {
    const r = await api(path, { method: "POST", body: form(v.files) });
    const a = Object.assign(document.createElement("a"), { href: objectUrl(await r.blob()), download: name });
    document.body.appendChild(a);
    a.click();
    a.remove();
  } catch (err) { v.fail(err); }
}

// ---- classify -------------------------------------------------------------------------------------
const classify = view("classify");
classify.onInput = (files) => show($(".preview", classify.el), files[0].blob);
classify.run = async () => {
  const q = query({ model: classify.model.value, top_k: 5, explain: "occlusion" });
  const body = await (await api(`classify?${q}`, { method: "POST", body: form(classify.files.slice(0, 1)) })).json();
  const r = body.results[0];
  $(".bars", classify.el).replaceChildren(...r.predictions.map((p) => {
    const li = document.createElement("li");
    li.innerHTML = '<span class="label"></span><span class="bar"><span></span></span><span class="score"></span>';
    $(".label", li).textContent = p.label;
    $(".bar span", li).style.width = `${(100 * p.score).toFixed(1)}%`;
    $(".score", li).textContent = p.score.toFixed(3);
    return li;
  }));
  const heat = $(".heatmap", classify.el);
  if (r.explanation && r.explanation.overlay_png) heat.src = dataUrl(r.explanation.overlay_png);
  const notes = [...(r.warnings || [])];
  if (r.preprocessing && r.preprocessing.inverted) notes.unshift("dark ink on light paper: the image was inverted");
  if (r.reliable === false) notes.push("the model marks this answer as unreliable");
  classify.warn(notes);
  classify.el.dataset.top = r.predictions[0].label;
  classify.done(body.model, body.timings);
};

const canvas = $("#canvas-digit");
const pen = canvas.getContext("2d");
function clearCanvas() { pen.fillStyle = "#000"; pen.fillRect(0, 0, canvas.width, canvas.height); }
clearCanvas();
let drawing = false;
function point(e) {
  const box = canvas.getBoundingClientRect();
  return [(e.clientX - box.left) * canvas.width / box.width, (e.clientY - box.top) * canvas.height / box.height];
}
canvas.addEventListener("pointerdown", (e) => {
  drawing = true;
  canvas.setPointerCapture(e.pointerId);
  pen.beginPath();
  pen.moveTo(...point(e));
});
canvas.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  Object.assign(pen, { strokeStyle: "#fff", lineWidth: 16, lineCap: "round", lineJoin: "round" });
  pen.lineTo(...point(e));
  pen.stroke();
});
canvas.addEventListener("pointerup", () => { drawing = false; });
$("#draw-clear").addEventListener("click", clearCanvas);
$("#draw-use").addEventListener("click", () => {
  canvas.toBlob(async (blob) => {
    classify.setFiles([{ blob, name: "drawing.png" }]);
    try { await classify.run(); } catch (err) { classify.fail(err); }
  }, "image/png");
});

// ---- segment --------------------------------------------------------------------------------------
const segment = view("segment");
let segImages = {};
function showSeg() {
  const which = $('input[name="seg-show"]:checked', segment.el).value;
  if (segImages[which]) $(".seg-image", segment.el).src = segImages[which];
}
for (const r of $$('input[name="seg-show"]', segment.el)) r.addEventListener("change", showSeg);
segment.query = (output) => query({
  model: segment.model.value, diameter: $(".diameter", segment.el).value, channel: $(".channel", segment.el).value,
  invert: $(".invert", segment.el).checked ? "true" : "", output,
});
segment.run = async () => {
  const [json, overlay] = await Promise.all([
    api(`segment?${segment.query("json")}`, { method: "POST", body: form(segment.files) }).then((r) => r.json()),
    api(`segment?${segment.query("overlay")}`, { method: "POST", body: form(segment.files) }).then((r) => r.blob()),
  ]);
  segImages = { overlay: objectUrl(overlay), mask: dataUrl(json.mask_png) };
  showSeg();
  $(".count", segment.el).textContent = `${json.num_objects} objects` +
    (json.diameter ? ` · diameter ${json.diameter.used} px${json.diameter.estimated ? " (estimated)" : ""}` : "");
  segment.el.dataset.objects = json.num_objects;
  $(".objects tbody", segment.el).replaceChildren(...json.objects.slice(0, 500).map((o) => {
    const tr = document.createElement("tr");
    for (const v of [o.label, o.area, o.centroid_x, o.centroid_y]) tr.appendChild(Object.assign(document.createElement("td"), { textContent: v }));
    return tr;
  }));
  segment.warn(json.warnings);
  segment.done(json.model, json.timings);
};
$(".dl-labels", segment.el).addEventListener("click", () => download(segment, `segment?${segment.query("labels")}`, "labels.tif"));
$(".dl-csv", segment.el).addEventListener("click", () => download(segment, `segment?${segment.query("csv")}`, "objects.csv"));

// ---- denoise --------------------------------------------------------------------------------------
const denoise = view("denoise");
const slider = $(".slider", denoise.el);
function slide() { $(".after", denoise.el).style.clipPath = `inset(0 0 0 ${slider.value}%)`; }
slider.addEventListener("input", slide);
slide();
denoise.onInput = (files) => show($(".before", denoise.el), files[0].blob);
denoise.run = async () => {
  const q = query({
    model: denoise.model.value, sigma: $(".sigma", denoise.el).value, ensemble: $(".ensemble", denoise.el).value,
    noise: $(".noise", denoise.el).value, pd: $(".pd", denoise.el).checked ? "true" : "", output: "json",
  });
  const body = await (await api(`denoise?${q}`, { method: "POST", body: form(denoise.files.slice(0, 1)) })).json();
  const type = body.format === "png" ? "image/png" : "image/tiff";
  const url = dataUrl(body.image, type);
  show($(".after", denoise.el), b64Blob(body.image, type), $(".before", denoise.el));
  Object.assign($(".download", denoise.el), { href: url, download: `denoised.${body.format === "png" ? "png" : "tif"}` });
  $(".sigma-used", denoise.el).textContent = `sigma used ${body.sigma_used}` +
    (body.sigma_estimated === null ? " (given)" : body.noise_measured_as === "lossy"
      ? " (estimated from the image, as its lossy compression kept the noise)" : " (estimated from the image)") +
    ` · ${body.noise_model.kind} noise` + (body.pixel_shuffle > 1 ? " · pixel-shuffled" : "") +
    ` · noise before ${body.noise_before}, after ${body.noise_after} · ${body.ensemble} pass${body.ensemble > 1 ? "es" : ""}`;
  denoise.warn(body.warnings);
  denoise.done(body.model, body.timings);
};

// ---- nowcast --------------------------------------------------------------------------------------
const nowcast = view("nowcast");
// reflectivity colours (dBZ lower bounds), as radar displays draw them
const DBZ_COLOURS = [
  [5, "#9fd3f5"], [10, "#4aa3e6"], [15, "#1f5fd1"], [20, "#2fbf4a"], [25, "#1a8f2e"], [30, "#f2e52e"],
  [35, "#f2a81f"], [40, "#ef6a1a"], [45, "#d9261c"], [50, "#a3125c"], [55, "#d14fd9"], [60, "#ffffff"],
];
const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
const DBZ_RGB = DBZ_COLOURS.map(([v, c]) => [v, rgb(c)]);

function colour(v, unit, noRain) {
  if (v === null) return [90, 90, 90, 255]; // no data
  if (v <= noRain) return [16, 20, 28, 255]; // the input's own no-rain value
  const dbz = unit === "mm/h" ? (v > 0 ? 10 * Math.log10(200 * Math.pow(v, 1.6)) : -99) : v;
  let c = null;
  for (const [lo, rgbv] of DBZ_RGB) if (dbz >= lo) c = rgbv;
  return c ? [...c, 255] : [16, 20, 28, 255]; // below the lowest class: no rain
}

function render(ctx, frame, unit, noRain) {
  const h = frame.length, w = frame[0].length;
  const img = ctx.createImageData(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) img.data.set(colour(frame[y][x], unit, noRain), 4 * (y * w + x));
  const off = Object.assign(document.createElement("canvas"), { width: w, height: h });
  off.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, ctx.canvas.width, ctx.canvas.height);
}

function drawScale() {
  const c = $(".scale", nowcast.el), ctx = c.getContext("2d");
  const n = DBZ_COLOURS.length, w = (c.width - 30) / n;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, c.width, c.height);
  DBZ_COLOURS.forEach(([v, col], i) => {
    ctx.fillStyle = col;
    ctx.fillRect(i * w, 0, w, 20);
    ctx.fillStyle = "#222";
    ctx.font = "10px sans-serif";
    ctx.fillText(String(v), i * w + 2, 34);
  });
  ctx.fillText("dBZ", c.width - 26, 14);
}
drawScale();

let timer = null;
function animate(frames, labels, unit, noRain) {
  const ctx = $(".radar", nowcast.el).getContext("2d");
  let i = 0;
  const show = () => {
    render(ctx, frames[i], unit, noRain);
    $(".frame-label", nowcast.el).textContent = labels[i];
    nowcast.el.dataset.frame = i;
    i = (i + 1) % frames.length;
  };
  clearInterval(timer);
  show();
  timer = setInterval(show, 600);
  const play = $(".play", nowcast.el);
  play.textContent = "Pause";
  play.onclick = () => {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "Play"; }
    else { timer = setInterval(show, 600); play.textContent = "Pause"; }
  };
}

function skillTable(verification, model) {
  const leads = verification.lead_minutes, pick = [0, Math.floor(leads.length / 2) - 1, leads.length - 1];
  const head = $(".skill thead", nowcast.el), body = $(".skill tbody", nowcast.el);
  head.innerHTML = "<tr><th>method</th></tr>";
  for (const k of pick) head.firstChild.insertAdjacentHTML("beforeend", `<th>MAE ${leads[k]} min</th><th>CSI 30 dBZ ${leads[k]} min</th>`);
  body.replaceChildren(...Object.entries(verification.methods).map(([name, s]) => {
    const tr = document.createElement("tr");
    if (name === model) tr.className = "ours";
    tr.appendChild(Object.assign(document.createElement("td"), { textContent: name }));
    for (const k of pick) {
      tr.appendChild(Object.assign(document.createElement("td"), { textContent: s.mae_dbz ? s.mae_dbz[k].toFixed(2) : "" }));
      tr.appendChild(Object.assign(document.createElement("td"), { textContent: s.csi_30dbz ? s.csi_30dbz[k].toFixed(3) : "" }));
    }
    return tr;
  }));
}

nowcast.run = async () => {
  const q = query({ model: nowcast.model.value, output: "json", observed: "true" });
  const body = await (await api(`nowcast?${q}`, { method: "POST", body: form(nowcast.files) })).json();
  const frames = [...body.observed.frames, ...body.frames];
  const labels = [
    ...body.observed.lead_times_minutes.map((m) => `observed ${m === 0 ? "now" : `${m} min`}`),
    ...body.lead_times_minutes.map((m) => `forecast +${m} min`),
  ];
  $(".radar", nowcast.el).dataset.frames = frames.length;
  animate(frames, labels, body.unit, body.no_rain_value);
  if (body.verification) skillTable(body.verification, body.model.name);
  nowcast.warn(body.warnings);
  nowcast.done(body.model, body.timings);
};

// ---- tabs (arrow keys move between them) ----------------------------------------------------------
const tabs = $$('[role="tab"]');
function select(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(`#${t.getAttribute("aria-controls")}`).hidden = !on;
  }
  tab.focus();
}
tabs.forEach((t, i) => {
  t.addEventListener("click", () => select(t));
  t.addEventListener("keydown", (e) => {
    if (e.key === "ArrowRight") select(tabs[(i + 1) % tabs.length]);
    if (e.key === "ArrowLeft") select(tabs[(i - 1 + tabs.length) % tabs.length]);
  });
});

loadModels();
