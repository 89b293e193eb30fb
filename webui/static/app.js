// imgsearch page: one vanilla module, no framework, nothing to build. Every string that comes from
// the API reaches the page through textContent or a DOM property, never through innerHTML. Every
// fetch is a same-origin relative URL, so the service's token cookie goes along by itself.

const $ = (id) => document.getElementById(id);
const form = $("search"), queryBox = $("q"), rerankBox = $("rerank"), depthBox = $("k"), countBox = $("n");
const grid = $("results"), message = $("message"), viewer = $("viewer");
const DEFAULTS = { k: 20, n: 50 };
const POLL_MS = 3000;

let hits = [];      // what the grid shows, best first
let current = -1;   // index in `hits` of the picture in the large view
let searchSeq = 0;  // answers of a superseded search are dropped

/** Element builder: props are DOM properties (or attributes), children are nodes or plain text. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);  // a string becomes a text node
  return node;
}

async function api(url, options = {}) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const detail = body?.detail;
    const text = Array.isArray(detail) ? detail.map((d) => d.msg ?? String(d)).join("; ") : detail;
    throw new Error(text ? String(text) : `${response.status} ${response.statusText}`);
  }
  return body;
}

// ---- state <-> URL -------------------------------------------------------------------------

function positive(text, fallback) {
  const value = Number.parseInt(text ?? "", 10);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

function readURL() {
  const p = new URLSearchParams(location.search);
  const like = p.get("like");
  return {
    q: like ? "" : (p.get("q") ?? ""),
    like: like && /^\d+$/.test(like) ? like : null,
    rerank: p.get("rerank") !== "0",
    k: positive(p.get("k"), DEFAULTS.k),
    n: positive(p.get("n"), DEFAULTS.n),
  };
}

function readForm() {
  return {
    q: queryBox.value.trim(), like: null, rerank: rerankBox.checked,
    k: positive(depthBox.value, DEFAULTS.k), n: positive(countBox.value, DEFAULTS.n),
  };
}

function fillForm(state) {
  queryBox.value = state.q;
  rerankBox.checked = state.rerank;
  depthBox.value = state.k;
  countBox.value = state.n;
  depthBox.disabled = !state.rerank;
}

/** The URL carries the search (never the token), so it can be bookmarked and shared. */
function urlOf(state) {
  if (!state.q && !state.like) return location.pathname;
  const p = new URLSearchParams();
  if (state.like) p.set("like", state.like); else p.set("q", state.q);
  p.set("rerank", state.rerank ? "1" : "0");
  p.set("k", state.k);
  p.set("n", state.n);
  return `${location.pathname}?${p}`;
}

function go(state, push) {
  const url = urlOf(state);
  const same = url === location.pathname + location.search;
  history[push && !same ? "pushState" : "replaceState"](null, "", url);
  fillForm(state);
  run(state);
}

// ---- searching and the grid ----------------------------------------------------------------

function setMessage(text, isError = false) {
  message.textContent = text;
  message.classList.toggle("error", isError);
}

async function run(state) {
  const seq = ++searchSeq;
  if (viewer.open) viewer.close();
  if (!state.q && !state.like) {
    show([]);
    setMessage("Describe the picture you are looking for and press Enter.");
    return;
  }
  setMessage("Searching…");
  const started = performance.now();
  try {
    let found, title;
    if (state.like) {
      const id = encodeURIComponent(state.like);
      const [image, body] = await Promise.all([api(`api/images/${id}`), api(`api/images/${id}/similar?limit=${state.n}`)]);
      found = body.hits;
      title = `${found.length} pictures like ${image.name}`;
    } else {
      const params = new URLSearchParams({ q: state.q, limit: state.n, rerank_k: state.rerank ? state.k : 0 });
      found = (await api(`api/search?${params}`)).hits;
      const how = state.rerank ? `top ${state.k} reranked with ITM` : "CLIP only";
      title = `${found.length} results for “${state.q}” (${how})`;
    }
    if (seq !== searchSeq) return;
    show(found);
    setMessage(`${title}, ${Math.round(performance.now() - started)} ms`);
  } catch (err) {
    if (seq !== searchSeq) return;
    show([]);
    setMessage(`Search failed: ${err.message}`, true);
  }
}

function scoreText(hit) {
  return [["score", hit.score], ["CLIP", hit.clip_score], ["ITM", hit.itm_score]]
    .filter(([, value]) => typeof value === "number")
    .map(([label, value]) => `${label} ${value.toFixed(3)}`)
    .join(" · ");
}

// Images are addressed by catalog id only (the hit's one JSON shape carries no URLs).
const imageUrl = (hit, what) => `api/images/${encodeURIComponent(hit.id)}/${what}`;

function card(hit, index) {
  const scores = scoreText(hit);
  const link = el("a", { class: "card", href: imageUrl(hit, "original"), title: hit.path },
    el("div", { class: "thumb" },
      el("img", { src: imageUrl(hit, "thumbnail"), alt: hit.caption || hit.name, loading: "lazy",
                  decoding: "async", width: 152, height: 152 })),
    el("span", { class: "caption" }, hit.caption || hit.name),
    el("span", { class: "folder" }, el("bdi", {}, hit.folder)),
    scores ? el("span", { class: "scores" }, scores) : null);
  link.dataset.index = index;
  link.addEventListener("click", (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();  // a plain click opens the large view; ctrl-click still opens the file
    openViewer(index);
  });
  return el("li", {}, link);
}

function show(found) {
  hits = found;
  grid.replaceChildren(...found.map(card));
}

// ---- the large view ------------------------------------------------------------------------

function bytes(n) {
  if (typeof n !== "number") return null;
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function when(hit) {
  const [label, iso] = [hit.date_source === "exif" ? "taken" : "modified", hit.date];
  if (!iso) return "unknown";
  const date = new Date(iso);
  return `${Number.isNaN(date.getTime()) ? iso : date.toLocaleString()} (${label})`;
}

function note(...parts) {
  $("viewer-note").replaceChildren(...parts);
}

function openViewer(index) {
  const hit = hits[index];
  if (!hit) return;
  current = index;
  const img = $("viewer-img");
  img.src = imageUrl(hit, "original");
  img.alt = hit.caption || hit.name;
  $("viewer-caption").textContent = hit.caption || hit.name;
  $("viewer-path").value = hit.path;
  const dims = hit.width && hit.height ? `${hit.width} × ${hit.height} px` : null;
  $("viewer-size").textContent = [dims, bytes(hit.size)].filter(Boolean).join(" · ") || "unknown";
  $("viewer-date").textContent = when(hit);
  $("viewer-scores").textContent = scoreText(hit) || "—";
  $("viewer-original").href = imageUrl(hit, "original");
  $("viewer-prev").disabled = index === 0;
  $("viewer-next").disabled = index === hits.length - 1;
  note();
  if (!viewer.open) viewer.showModal();
}

function step(delta) {
  const next = current + delta;
  if (next >= 0 && next < hits.length) openViewer(next);
}

async function reveal() {
  const hit = hits[current];
  try {
    const body = await api(`api/images/${encodeURIComponent(hit.id)}/reveal`, { method: "POST" });
    if (body.opened) note("Opened the folder.");
    else note("This machine could not open the folder; its path: ", el("code", {}, body.folder));
  } catch (err) {
    note(`Could not open the folder: ${err.message}. Its path: `, el("code", {}, hit.folder));
  }
}

async function copyPath() {
  const field = $("viewer-path");
  try {
    await navigator.clipboard.writeText(field.value);
    note("Path copied.");
  } catch {  // no clipboard API outside a secure context: select it and try the old way
    field.focus();
    field.select();
    note(document.execCommand("copy") ? "Path copied." : "Path selected: press Ctrl+C to copy it.");
  }
}

viewer.addEventListener("keydown", (event) => {
  if (event.target.matches?.("input:not([readonly])")) return;  // arrows edit text there
  if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
  if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
});
viewer.addEventListener("close", () => {
  $("viewer-img").removeAttribute("src");
  grid.querySelector(`[data-index="${current}"]`)?.focus();
});
viewer.addEventListener("click", (event) => { if (event.target === viewer) viewer.close(); });  // backdrop
$("viewer-close").addEventListener("click", () => viewer.close());
$("viewer-prev").addEventListener("click", () => step(-1));
$("viewer-next").addEventListener("click", () => step(1));
$("viewer-reveal").addEventListener("click", reveal);
$("viewer-copy").addEventListener("click", copyPath);
$("viewer-similar").addEventListener("click", () => {
  const hit = hits[current];
  go({ ...readForm(), q: "", like: String(hit.id) }, true);
});

// ---- indexing progress ---------------------------------------------------------------------

function activityText(a) {
  const of = a.total != null ? `${a.done} of ${a.total}` : `${a.done}`;
  const phase = a.phase ? ` (${a.phase})` : "";
  switch (a.state) {
    case "scanning": return `Scanning: ${a.done} files seen${phase}`;
    case "vectors": return `Embedding pictures: ${of}${phase}`;
    case "captions": return `Writing captions: ${of}${phase}`;
    case "events": return `Updating changed files: ${a.queued} queued${phase}`;
    default: return null;
  }
}

function renderStatus(s) {
  const a = s.activity ?? { state: "idle" };
  const busy = a.state !== "idle";
  const parts = [`${s.images} pictures`, `${s.vectors ?? "?"} vectors`];
  if (s.pending_vectors) parts.push(`${s.pending_vectors} vectors pending`);
  if (s.pending_captions) parts.push(`${s.pending_captions} captions pending`);
  const text = [busy ? activityText(a) : null, parts.join(" · ")].filter(Boolean).join(" — ");
  const line = $("status-text");
  if (line.textContent !== text) line.textContent = text;
  $("status").classList.toggle("busy", busy);
  const bar = $("status-progress");
  bar.hidden = !busy;
  if (busy && a.total) { bar.max = a.total; bar.value = a.done; } else bar.removeAttribute("value");
}

async function pollStatus() {
  try {
    renderStatus(await api("api/status"));
  } catch (err) {
    $("status-text").textContent = `Service not answering (${err.message})`;
  }
  setTimeout(pollStatus, document.hidden ? 5 * POLL_MS : POLL_MS);
}

// ---- wiring --------------------------------------------------------------------------------

form.addEventListener("submit", (event) => {
  event.preventDefault();
  go(readForm(), true);
});
for (const box of [rerankBox, depthBox, countBox]) {
  box.addEventListener("change", () => {
    depthBox.disabled = !rerankBox.checked;
    const state = readURL();
    if (state.q || state.like) go({ ...readForm(), q: state.q, like: state.like }, true);
  });
}
window.addEventListener("popstate", () => {
  const state = readURL();
  fillForm(state);
  run(state);
});

go(readURL(), false);  // also drops a first visit's ?token=… from the address bar
pollStatus();
