// imgsearch page: one vanilla module, no framework, nothing to build. Every string that comes from
// the API reaches the page through textContent or a DOM property, never through innerHTML. Every
// fetch is a same-origin relative URL, so the service's token cookie goes along by itself.

const $ = (id) => document.getElementById(id);
const form = $("search"), queryBox = $("q"), rerankBox = $("rerank"), depthBox = $("k"), countBox = $("n");
const fromBox = $("from"), untilBox = $("until"), cameraBox = $("camera"), sortBox = $("sort"), modeBox = $("mode");
const folderMenu = $("folders"), folderList = $("folder-list"), chips = $("terms"), fileInput = $("picture-file");
const grid = $("results"), message = $("message"), moreButton = $("more"), freshButton = $("fresh");
const viewer = $("viewer");

const DEFAULTS = { rerank: true, k: 20, n: 40 };
const SORTS = ["relevance", "newest", "oldest"];
const MODES = ["hybrid", "vector", "text"];  // candidates from CLIP and the words; CLIP alone; the words alone
const MAX_QUERY_CHARS = 1000;          // the API's limit on one query's words
const MAX_PICTURE_BYTES = 50 * 1024 ** 2;
const MAX_TERMS = 32, MAX_LIMIT = 10000, MAX_OFFSET = 100000;
const PERIOD = /^\d{4}(-\d{1,2}(-\d{1,2})?)?$/;  // YYYY, YYYY-MM or YYYY-MM-DD
const WEIGHT = /^(\d+(?:\.\d+)?):(.+)$/s;       // "2:beach" weighs twice (as the API's GET reads it)
const POLL_MS = 3000;
const NOT_RUNNING = "The imgsearch service is not running: start it with `imgsearch watch`.";

// A search is one plain value: {q, not[], like[], pics[], concepts[], in[], from, until, camera, tags[], sort, mode,
// rerank, k, n}.
// Everything but `pics` (pictures dropped, pasted or picked, kept here by key) lives in the URL.
const EMPTY = { q: "", not: [], like: [], pics: [], concepts: [], in: [], from: "", until: "", camera: "", tags: [], sort: "relevance",
                mode: "hybrid", ...DEFAULTS };
const pictures = new Map();  // key -> {name, data (base64), size}: the pictures this tab was given
const imageNames = new Map();  // indexed id -> its file name, for the chips
const chipImages = new Map();  // indexed id -> its chip's thumbnail (kept: a re-render loads nothing)
let pictureSeq = 0;

let current = { ...EMPTY };   // the search the form and the URL show
let shownKey = null;          // key of the search whose results the grid shows (or is loading)
let shownState = null;        // that search
let hits = [];                // what the grid shows, in order
let seen = new Set();         // their ids: a later page never repeats one
let fetched = 0;              // how many results the pages so far asked for (the next offset)
let more = false;             // whether the service may have more for this search
let good = null;              // with a relevance cutoff, once the matches ran out: how many there are
let weaker = false;           // … and the weaker ones below them are being shown (min_match=0)
let wantedKey = null;         // key of the search asked for last (shown, on its way, or failed)
let inflight = null;          // key of the search whose first page is on its way
let paging = false;           // a further page is on its way
let searchSeq = 0;            // answers of a superseded search are dropped
let currentIndex = -1;       // index in `hits` of the picture in the large view
let facets = { roots: [], folders: [], cameras: [] };
let lastVectors = null;       // the service's vector count at the last poll
let baseVectors = null;       // … when the shown search ran: more means new pictures

/** Element builder: props are DOM properties (or attributes), children are nodes or plain text.
 * The duplicates view (dupes.js) builds with it too. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);  // a string becomes a text node
  return node;
}

/** A same-origin API call; throws an Error whose message is one line to show. */
async function api(url, options = {}) {
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin", ...options });
  } catch {
    throw new Error(NOT_RUNNING);  // nothing answered at all
  }
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const detail = body?.detail;
    const text = Array.isArray(detail) ? detail.map((d) => d.msg ?? String(d)).join("; ") : detail;
    if (!text && [502, 503, 504].includes(response.status)) throw new Error(NOT_RUNNING);
    throw new Error(text ? String(text).split("\n")[0] : `${response.status} ${response.statusText}`);
  }
  return body;
}

// ---- the search box: words and -words --------------------------------------------------------

/** `red car -night "-parked cars"` → {q: "red car", not: ["night", "parked cars"]}. */
function parseBox(text) {
  const words = [], not = [];
  for (const m of text.slice(0, MAX_QUERY_CHARS).matchAll(/(-?)"([^"]*)"?|(\S+)/g)) {
    if (m[3] !== undefined) {
      if (m[3] === "-") continue;
      if (m[3].startsWith("-")) not.push(m[3].slice(1)); else words.push(m[3]);
    } else {
      const inner = m[2].trim(), negative = m[1] === "-" || inner.startsWith("-");
      const phrase = (inner.startsWith("-") ? inner.slice(1) : inner).trim();
      if (phrase) (negative ? not : words).push(phrase);
    }
  }
  return { q: words.join(" "), not: [...new Set(not)] };
}

function boxText(state) {
  const nots = state.not.map((w) => (/[\s"]/.test(w) ? `"-${w.replaceAll('"', "")}"` : `-${w}`));
  return [state.q, ...nots].filter(Boolean).join(" ");
}

// ---- state <-> form <-> URL ------------------------------------------------------------------

/** A number box's value, clamped to its own min and max (what is sent is what the box shows). */
function clamped(box, fallback) {
  const value = Number.parseInt(box.value, 10);
  const [min, max] = [Number(box.min), Number(box.max)];
  const fixed = Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : fallback;
  if (String(fixed) !== box.value) box.value = fixed;
  return fixed;
}

function clampText(text, box, fallback) {
  box.value = text ?? "";
  return clamped(box, fallback);
}

const hasWords = (s) => Boolean(s.q);
const hasTerms = (s) => Boolean(s.q || s.like.length || s.pics.length || s.concepts.length);
const hasFilters = (s) => Boolean(s.in.length || s.from || s.until || s.camera || s.tags.length);
const isActive = (s) => hasTerms(s) || s.not.length > 0 || hasFilters(s) || s.sort !== "relevance";
/** Whether the service keeps only the likely matches (words, reranked): a short page then means
 * the matches ran out, not the pictures. */
const hasCutoff = (s) => (hasWords(s) && s.rerank && s.k > 0) || s.concepts.length > 0;
const CONCEPT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
let conceptNames = [];        // the concepts taught so far (for the menu and the large view)

function readForm() {
  const { q, not } = parseBox(queryBox.value);
  return {
    q, not, like: [...current.like], pics: [...current.pics], concepts: [...current.concepts],
    in: [...folderList.querySelectorAll("input:checked")].map((box) => box.value),
    from: fromBox.value.trim(), until: untilBox.value.trim(), camera: cameraBox.value, tags: [...current.tags],
    sort: sortBox.value, mode: modeBox.value, rerank: rerankBox.checked,
    k: clamped(depthBox, DEFAULTS.k), n: clamped(countBox, DEFAULTS.n),
  };
}

function readURL(historyState = history.state) {
  const p = new URLSearchParams(location.search);
  const dates = (name) => { const v = (p.get(name) ?? "").trim(); return PERIOD.test(v) ? v : ""; };
  const sort = p.get("sort"), mode = p.get("mode");
  return {
    q: (p.getAll("q").join(" ")).slice(0, MAX_QUERY_CHARS).trim(),
    not: p.getAll("not").map((w) => w.trim().slice(0, MAX_QUERY_CHARS)).filter(Boolean),
    like: [...new Set(p.getAll("like").filter((id) => /^\d{1,15}$/.test(id)))],
    pics: (historyState?.pics ?? []).filter((key) => pictures.has(key)),
    concepts: [...new Set(p.getAll("concept").filter((name) => CONCEPT_NAME.test(name)))].slice(0, 10),
    in: [...new Set(p.getAll("in").filter((f) => f.startsWith("/")))],
    from: dates("from"), until: dates("until"), camera: (p.get("camera") ?? "").slice(0, 100),
    tags: [...new Set(p.getAll("tag").map((t) => t.trim()).filter((t) => t && t.length <= 60))].slice(0, 20),
    sort: SORTS.includes(sort) ? sort : "relevance",
    mode: MODES.includes(mode) ? mode : "hybrid",
    rerank: p.get("rerank") !== "0",
    k: clampText(p.get("k") ?? String(DEFAULTS.k), depthBox, DEFAULTS.k),
    n: clampText(p.get("n") ?? String(DEFAULTS.n), countBox, DEFAULTS.n),
  };
}

function fillForm(state) {
  current = state;
  if (parseBox(queryBox.value).q !== state.q || parseBox(queryBox.value).not.join("\n") !== state.not.join("\n")) {
    queryBox.value = boxText(state);
  }
  rerankBox.checked = state.rerank;
  depthBox.value = state.k;
  countBox.value = state.n;
  depthBox.disabled = !state.rerank;
  fromBox.value = state.from;
  untilBox.value = state.until;
  for (const box of [fromBox, untilBox]) box.setCustomValidity("");
  sortBox.value = state.sort;
  modeBox.value = state.mode;
  renderFolders();
  renderCameras();
  renderConcepts();
  renderChips();
  $("clear-filters").hidden = !hasFilters(state);
}

/** The URL carries the search (never the token), so it can be bookmarked and shared. */
function urlOf(state) {
  const p = new URLSearchParams();
  if (state.q) p.set("q", state.q);
  for (const word of state.not) p.append("not", word);
  for (const id of state.like) p.append("like", id);
  for (const name of state.concepts) p.append("concept", name);
  for (const folder of state.in) p.append("in", folder);
  if (state.from) p.set("from", state.from);
  if (state.until) p.set("until", state.until);
  if (state.camera) p.set("camera", state.camera);
  for (const tag of state.tags) p.append("tag", tag);
  if (state.sort !== "relevance") p.set("sort", state.sort);
  if (state.mode !== "hybrid") p.set("mode", state.mode);
  if (isActive(state)) {
    p.set("rerank", state.rerank ? "1" : "0");
    p.set("k", state.k);
    p.set("n", state.n);
  }
  const query = p.toString().replace(/%2F/gi, "/");  // folders stay readable
  return query ? `${location.pathname}?${query}` : location.pathname;
}

const keyOf = (state) => `${urlOf(state)}#${state.pics.join(",")}`;

/** Show a search: a new history entry (push) or this one changed, then run it. */
function go(state, push) {
  const url = urlOf(state);
  const fromViewer = history.state?.viewer != null;  // the large view's own entry: take it over
  const same = url === location.pathname + location.search && !fromViewer
    && (history.state?.pics ?? []).join(",") === state.pics.join(",");
  const entry = state.pics.length ? { pics: state.pics } : null;
  history[push && !same && !fromViewer ? "pushState" : "replaceState"](entry, "", url);
  closeViewer(true);  // the search took over the view's entry (replaced or pushed past it)
  fillForm(state);
  run(state);
}

// ---- searching and the grid ----------------------------------------------------------------

function setMessage(text, isError = false) {
  message.textContent = text;
  message.classList.toggle("error", isError);
}

const basename = (path) => path.replace(/\/+$/, "").split("/").pop() || path;

function termWeight(text) {
  const m = WEIGHT.exec(text.trim());
  return m ? [m[2], Number(m[1])] : [text, 1];
}

/** One page of a search: GET with URL parameters, or POST when it holds a picture's bytes. A
 * search with terms asks each hit why it matched (`explain`) and names its `mode`; `weak` asks for
 * every picture, not only the likely matches (`min_match=0`; otherwise the service's cutoff). */
function fetchPage(state, offset, limit, weak = false) {
  const terms = hasTerms(state);
  const sort = terms || state.sort !== "relevance" ? state.sort : null;  // no terms: the API lists by date
  const rerankK = state.rerank && hasWords(state) ? state.k : 0;
  if (state.pics.length) {
    const list = [];
    if (state.q) { const [text, weight] = termWeight(state.q); list.push({ kind: "text", text, weight }); }
    for (const word of state.not) list.push({ kind: "text", text: word, weight: -1 });
    for (const id of state.like) list.push({ kind: "indexed", id: Number(id), weight: 1 });
    for (const key of state.pics) {
      const picture = pictures.get(key);
      list.push({ kind: "image", text: picture.name, data: picture.data, weight: 1 });
    }
    const body = { terms: list, folders: state.in, from: state.from || null, until: state.until || null,
                   camera: state.camera || null, tags: state.tags, concepts: state.concepts,
                   sort: sort ?? "relevance", limit, offset,
                   rerank_k: rerankK,
                   mode: state.mode, explain: true };
    if (weak) body.min_match = 0;
    return api("api/search", { method: "POST", headers: { "Content-Type": "application/json" },
                               body: JSON.stringify(body) });
  }
  const p = new URLSearchParams();
  if (state.q) p.append("q", state.q);
  for (const word of state.not) p.append("not", word);
  for (const id of state.like) p.append("like", id);
  for (const folder of state.in) p.append("in", folder);
  for (const name of ["from", "until", "camera"]) if (state[name]) p.set(name, state[name]);
  for (const tag of state.tags) p.append("tag", tag);
  for (const name of state.concepts) p.append("concept", name);
  if (sort) p.set("sort", sort);
  p.set("limit", limit);
  p.set("offset", offset);
  p.set("rerank_k", rerankK);
  if (terms) {
    p.set("mode", state.mode);
    p.set("explain", "true");
    if (weak) p.set("min_match", "0");
  }
  return api(`api/search?${p}`);
}

/** What the page's next request asks for. Pictures alone (and a listing by date) page by offset.
 * Searches with words, and any terms sorted by date, ask again from 0 for more each time, and what
 * was shown already is skipped: the service sorts only the top offset+limit by date, and which
 * pictures make its top offset+limit by words (the candidates it fuses, how deep the cutoff
 * reranks) depends on offset+limit, so by offset a picture could come twice and another never. */
const fromTheTop = (state) => hasWords(state) || (hasTerms(state) && state.sort !== "relevance");

function nextPage(state, asked = fetched) {
  if (fromTheTop(state)) return { offset: 0, limit: Math.min(MAX_LIMIT, asked + state.n) };
  return { offset: asked, limit: state.n };
}

/** Whether another page may follow this one (a short page is the last: with the cutoff, the last
 * of the matches; so are the API's limits). */
function goesOn(state, page, found) {
  if (found.length < page.limit) return false;
  return fromTheTop(state) ? page.limit < MAX_LIMIT : page.offset + page.limit <= MAX_OFFSET;
}

function problemOf(state) {
  if (state.not.length && !hasTerms(state)) {
    return "Say what to look for as well: a -word only leaves pictures out.";
  }
  if (state.mode === "text" && hasTerms(state) && !hasWords(state)) {
    return "A text search looks for words in names, folders and captions: type some, or search by hybrid or vector.";
  }
  for (const [name, value] of [["from", state.from], ["until", state.until]]) {
    if (value && !PERIOD.test(value)) return `The “${name}” date is a year (2021), a month (2021-06) or a day (2021-06-30).`;
  }
  if (state.not.length + (state.q ? 1 : 0) + state.like.length + state.pics.length > MAX_TERMS) {
    return `A search holds at most ${MAX_TERMS} words, -words and pictures.`;
  }
  return null;
}

async function run(state) {
  const key = keyOf(state);
  if (inflight === key) return;  // the same search is on its way (Enter in a box also fires change)
  const seq = ++searchSeq;
  wantedKey = key;
  if (!isActive(state)) {
    inflight = null;
    shownKey = key; shownState = state;
    show([], false);
    freshButton.hidden = true;
    setMessage("Describe the picture you are looking for and press Enter — or drop a picture here, "
               + "or pick folders or dates to list pictures.");
    return;
  }
  const problem = problemOf(state);
  if (problem) {
    inflight = null;
    setMessage(problem, true);  // the results shown stay
    return;
  }
  inflight = key;
  grid.setAttribute("aria-busy", "true");
  setMessage("Searching…");
  const started = performance.now();
  const vectorsThen = lastVectors;
  try {
    const page = nextPage(state, 0);
    const found = (await fetchPage(state, page.offset, page.limit)).hits;
    if (seq !== searchSeq) return;
    shownKey = key; shownState = state;
    baseVectors = vectorsThen ?? lastVectors;  // the first poll may have answered meanwhile
    freshButton.hidden = true;
    fetched = page.offset + page.limit;
    show(found, goesOn(state, page, found));
    if (hasCutoff(state) && found.length < page.limit) showCutoff();
    describe(state, performance.now() - started);
    reopenViewer();
  } catch (err) {
    if (seq !== searchSeq) return;
    const kept = hits.length ? " The results below are from before." : "";
    const detail = err.message === NOT_RUNNING ? NOT_RUNNING : `Search failed: ${err.message.replace(/\.?$/, ".")}`;
    setMessage(`${detail}${kept}`, true);
  } finally {
    if (seq === searchSeq) { inflight = null; grid.removeAttribute("aria-busy"); }
  }
}

async function loadMore() {
  if (!more || inflight || paging || !shownState) return;
  const state = shownState, seq = searchSeq;
  paging = true;
  moreButton.disabled = true;
  moreButton.textContent = "Loading…";
  try {
    const page = nextPage(state);
    const found = (await fetchPage(state, page.offset, page.limit, weaker)).hits;
    if (seq !== searchSeq) return;
    fetched = page.offset + page.limit;
    append(found.filter((hit) => !seen.has(hit.id)), goesOn(state, page, found));
    if (!weaker && hasCutoff(state) && found.length < page.limit) showCutoff();
    describe(state);
  } catch (err) {
    if (seq !== searchSeq) return;
    setMessage(err.message === NOT_RUNNING ? NOT_RUNNING : `Could not load more: ${err.message}`, true);
  } finally {
    paging = false;
    moreButton.disabled = false;
    moreButton.textContent = `Show ${shownState?.n ?? DEFAULTS.n} more`;
    if (seq === searchSeq) keepFilling();
  }
}

/** The matches ran out: a line below them, and a button for the pictures below the cutoff. */
function showCutoff() {
  good = hits.length;
  const button = el("button", { type: "button", class: "weaker-button" }, "Show weaker matches");
  button.addEventListener("click", loadWeaker);
  grid.append(el("li", { class: "cutoff", id: "cutoff" },
    el("p", { class: "cutoff-text" }, good ? "Good matches above this line" : "No picture matches"),
    button));
}

/** The same search without the cutoff, below the line: from the top, skipping what is shown; the
 * pages after it follow on as the matches' did. */
async function loadWeaker() {
  if (inflight || paging || !shownState || good == null || weaker) return;
  const state = shownState, seq = searchSeq;
  const button = grid.querySelector("#cutoff button");
  const focused = document.activeElement === button;  // (a disabled button loses the focus)
  paging = true;
  weaker = true;
  button.disabled = true;
  button.textContent = "Loading…";
  try {
    const page = nextPage(state, hits.length);
    const found = (await fetchPage(state, page.offset, page.limit, true)).hits;
    if (seq !== searchSeq) return;
    fetched = page.offset + page.limit;
    const added = found.filter((hit) => !seen.has(hit.id)), start = hits.length;
    append(added, goesOn(state, page, found));
    const note = added.length ? null : el("p", { class: "cutoff-note", tabIndex: -1 }, "No other pictures to show.");
    if (note) button.replaceWith(note); else button.remove();
    if (focused) (note ?? grid.querySelector(`[data-index="${start}"]`))?.focus();  // on to what it brought
    describe(state);
  } catch (err) {
    if (seq !== searchSeq) return;
    weaker = false;
    button.disabled = false;
    button.textContent = "Show weaker matches";
    if (focused) button.focus();
    setMessage(err.message === NOT_RUNNING ? NOT_RUNNING : `Could not load weaker matches: ${err.message}`, true);
  } finally {
    paging = false;
    if (seq === searchSeq) keepFilling();
  }
}

let lastMs = 0;
function describe(state, ms = null) {
  if (ms != null) lastMs = Math.round(ms);
  const what = [];
  if (state.q) what.push(`for “${state.q}”`);
  const pictureNames = [...state.like.map((id) => imageNames.get(id) || `picture ${id}`),
                        ...state.pics.map((key) => pictures.get(key)?.name ?? "a picture")];
  if (pictureNames.length) what.push(`like ${pictureNames.join(" and ")}`);
  if (state.concepts.length) what.push(`of the concept ${state.concepts.join(" and ")}`);
  if (state.not.length) what.push(`without ${state.not.map((w) => `“${w}”`).join(" or ")}`);
  const where = [];
  if (state.in.length) where.push(`in ${state.in.map(basename).join(" or ")}`);
  if (state.from || state.until) where.push(`dated ${state.from || "…"} to ${state.until || "…"}`);
  if (state.camera) where.push(`camera ${state.camera}`);
  if (state.tags.length) where.push(`tagged ${state.tags.join(" and ")}`);
  let how;
  if (!hasTerms(state)) how = state.sort === "oldest" ? "oldest first" : "newest first";
  else {
    const words = hasWords(state), found = { vector: "found by CLIP", text: "found by words" }[state.mode];
    const reranked = words && state.rerank && state.k > 0;
    if (hasCutoff(state)) {
      how = [words && found, reranked && `top ${state.k} reranked with ITM`,
             state.concepts.length && "ranked by the concept's probability"].filter(Boolean).join(", ");
    }
    else if (!words || state.mode === "vector") how = "CLIP only";
    else how = state.mode === "text" ? "words only, not reranked" : "CLIP and words, not reranked";
    if (state.sort !== "relevance") how += `, ${state.sort} first`;
  }
  const n = hits.length, results = `${n} result${n === 1 ? "" : "s"}`;
  const plural = (count, one, many) => `${count} ${count === 1 ? one : many}`;
  let count;
  if (good == null) {
    count = n === 0 ? "No results" : more ? `Showing ${results}` : n === 1 ? "Showing 1 result" : `Showing all ${results}`;
  } else {  // the matches ran out: say how many, and the weaker ones shown below them
    count = good === 0 ? "No picture matches" : `Showing ${plural(good, "good match", "good matches")}`;
    if (n > good) count += `${good === 0 ? ", showing " : " and "}${plural(n - good, "weaker one", "weaker ones")}`;
  }
  const subject = [...what, ...where].join(", ");
  setMessage(`${count}${subject ? ` ${subject}` : ""} (${how}), ${lastMs} ms`);
}

function scorePairs(hit) {
  return [["score", hit.score], ["CLIP", hit.clip_score], ["ITM", hit.itm_score], ["match", hit.match]]
    .filter(([, value]) => typeof value === "number")
    .map(([label, value]) => `${label} ${value.toFixed(3)}`);
}

const percent = (p) => `${Math.round(p * 100)} %`;
const FIELD_WORDS = { name: "its file name", folders: "its folder names", caption: "its caption" };

/** Why a hit came back, in plain words, from its `explain` (null without one): "match 0.93 ·
 * CLIP 0.71 · found by vector #1, text #3 · “yellow, star” in its caption". */
function whyText(hit, state = shownState) {
  const e = hit.explain;
  if (!e || typeof e !== "object") return null;
  const num = (v) => typeof v === "number" && Number.isFinite(v);
  const parts = [];
  if (num(e.match)) parts.push(`match ${e.match.toFixed(2)}`);
  if (num(e.clip)) parts.push(`CLIP ${e.clip.toFixed(2)}`);
  if (num(e.itm) && e.names_match) parts.push(`ITM ${e.itm.toFixed(2)}`);  // the match is not ITM's then
  const ranks = Object.entries(e.ranks ?? {}).filter(([, rank]) => num(rank)).map(([by, rank]) => `${by} #${rank}`);
  if (ranks.length) parts.push(`found by ${ranks.join(", ")}`);
  if (e.names_match) parts.push("every word in its name or folders");
  else if (e.words && typeof e.words === "object") {
    const places = Object.entries(FIELD_WORDS).filter(([field]) => e.words[field]?.length)
      .map(([field, where]) => `“${e.words[field].join(", ")}” in ${where}`);
    if (places.length) parts.push(...places);
    else if (e.words_found === 0) parts.push("none of the words in its name, folders or caption");
  }
  if (num(e.not_penalty) && e.not_penalty >= 0.005) parts.push(`pushed down ${e.not_penalty.toFixed(2)} by a -word`);
  if (e.reranked === false && state && hasCutoff(state)) parts.push("not reranked (below the rerank depth)");
  return parts.length ? parts.join(" · ") : null;
}

// Images are addressed by catalog id only (the hit's one JSON shape carries no URLs).
const imageUrl = (id, what) => `api/images/${encodeURIComponent(id)}/${what}`;

function card(hit, index, weak) {
  const pairs = scorePairs(hit), why = whyText(hit);
  const tip = why ? el("span", { class: "why", id: `why-${hit.id}`, role: "tooltip" }, why) : null;
  const link = el("a", { class: weak ? "card weak" : "card", href: imageUrl(hit.id, "original"), title: hit.path },
    el("div", { class: "thumb" },
      // the caption is written out next to it: alt="" so a screen reader does not read it twice
      el("img", { src: imageUrl(hit.id, "thumbnail"), alt: "", loading: "lazy", decoding: "async",
                  width: 152, height: 152 })),
    el("span", { class: "caption" }, hit.caption || hit.name),
    el("span", { class: "folder" }, el("bdi", {}, hit.folder)),
    typeof hit.match === "number"
      ? el("span", { class: "match" }, percent(hit.match), el("span", { class: "visually-hidden" }, " likely a match"))
      : null,
    pairs.length ? el("span", { class: "scores" }, ...pairs.flatMap((pair, i) =>
      [i ? " · " : null, el("span", { class: "pair" }, pair)]).filter(Boolean)) : null);
  link.dataset.index = index;
  link.dataset.id = hit.id;
  if (tip) link.setAttribute("aria-describedby", tip.id);  // read out on focus; shown on hover and focus
  link.addEventListener("click", (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();  // a plain click opens the large view; ctrl-click still opens the file
    openViewer(index);
  });
  link.addEventListener("dragstart", () => { draggedId = String(hit.id); });
  link.addEventListener("dragend", () => { draggedId = null; });
  return el("li", { class: "cell" }, link, tip, tagButtons(hit, 3));
}

function show(found, hasMore) {
  hits = [];
  seen = new Set();
  good = null;
  weaker = false;
  grid.replaceChildren();
  append(found, hasMore);
}

function append(found, hasMore) {
  const start = hits.length;
  for (const hit of found) seen.add(hit.id);
  hits = hits.concat(found);
  grid.append(...found.map((hit, i) => card(hit, start + i, weaker)));
  more = hasMore;
  moreButton.hidden = !more;
  moreButton.textContent = `Show ${shownState?.n ?? DEFAULTS.n} more`;
  if (viewer.open) $("viewer-next").disabled = currentIndex === hits.length - 1;
}

// Endless scroll: the next page comes when the "more" button nears the window (it stays a
// button, for the keyboard and for windows where nothing scrolls).
const NEAR_PX = 400;
new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) loadMore();
}, { rootMargin: `0px 0px ${NEAR_PX}px 0px` }).observe(moreButton);

/** After a page: if the button is still near the window (a tall window), the next one too. */
function keepFilling() {
  requestAnimationFrame(() => {
    if (more && !moreButton.hidden && moreButton.getBoundingClientRect().top < innerHeight + NEAR_PX) loadMore();
  });
}

// ---- picture terms: dropped, pasted, picked or "more like this" ---------------------------------

function renderChips() {
  const items = [];
  for (const id of current.like) {
    const name = imageNames.get(id);
    if (name === undefined) nameOf(id);
    if (!chipImages.has(id)) {
      const img = el("img", { src: imageUrl(id, "thumbnail"), alt: "", width: 28, height: 28 });
      img.addEventListener("error", () => {
        const icon = el("span", { class: "chip-icon", "aria-hidden": "true" });
        chipImages.set(id, icon);
        img.replaceWith(icon);
      });
      chipImages.set(id, img);
    }
    items.push(chip(chipImages.get(id), name ?? `picture ${id}`, "indexed picture", () => ({ like: current.like.filter((x) => x !== id) })));
  }
  for (const key of current.pics) {
    const picture = pictures.get(key);
    items.push(chip(el("span", { class: "chip-icon", "aria-hidden": "true" }),
                    picture.name, "picture from this computer (kept in this tab, not in the link)",
                    () => ({ pics: current.pics.filter((x) => x !== key) })));
  }
  for (const name of current.concepts) {
    items.push(chip(el("span", { class: "chip-icon tag-icon", "aria-hidden": "true" }, "★"), name,
                    "a concept taught by example", () => ({ concepts: current.concepts.filter((x) => x !== name) }),
                    "concept "));
  }
  for (const tag of current.tags) {
    items.push(chip(el("span", { class: "chip-icon tag-icon", "aria-hidden": "true" }, "#"), tag,
                    "only pictures with this tag", () => ({ tags: current.tags.filter((x) => x !== tag) }), "tagged "));
  }
  chips.replaceChildren(...items);
  chips.hidden = items.length === 0;
}

/** Buttons for a picture's tags: a click narrows the search to pictures with that tag too. */
function tagButtons(hit, most = Infinity) {
  const labels = Object.keys(hit.tags ?? {}).slice(0, most);
  if (!labels.length) return null;
  return el("ul", { class: "tags", "aria-label": "Tags (choose one to show only pictures with it)" },
    ...labels.map((label) => {
      const button = el("button", { type: "button", class: "tag", title: `Only pictures tagged ${label} (${percent(hit.tags[label])})` }, label);
      button.addEventListener("click", () => {
        if (!current.tags.includes(label)) go({ ...readForm(), tags: [...current.tags, label] }, true);
      });
      return el("li", {}, button);
    }));
}

function chip(icon, name, what, without, prefix = "like ") {
  const remove = el("button", { type: "button", class: "chip-remove", "aria-label": `Remove ${name} from the search`,
                                title: "Remove from the search" }, "×");
  remove.addEventListener("click", () => {
    go({ ...readForm(), ...without() }, true);
    queryBox.focus();
  });
  return el("li", { class: "chip", title: `${name}: ${what}` }, icon, el("span", { class: "chip-name" }, prefix, el("bdi", {}, name)), remove);
}

async function nameOf(id) {
  imageNames.set(id, null);  // asked once
  try {
    imageNames.set(id, (await api(`api/images/${encodeURIComponent(id)}`)).name);
  } catch {
    imageNames.set(id, `picture ${id} (not indexed)`);
  }
  renderChips();
  if (shownState && shownState.like.includes(id) && hits.length) describe(shownState);
}

function addLike(id) {
  const state = readForm();
  if (!state.like.includes(String(id))) state.like.push(String(id));
  go(state, true);
}

function isPicture(file) {
  return file.type.startsWith("image/") || (!file.type && /\.(heic|heif|avif|jxl|cr2|nef|arw|dng|raf|orf|rw2)$/i.test(file.name));
}

function base64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function addPictures(files) {
  const list = [...files];
  const good = list.filter(isPicture);
  if (!good.length) {
    setMessage(list.length ? `${list[0].name || "That"} is not a picture.` : "Nothing to search by.", true);
    return;
  }
  const keys = [];
  for (const file of good) {
    if (file.size > MAX_PICTURE_BYTES) {
      setMessage(`${file.name} is ${Math.round(file.size / 1024 ** 2)} MB; a picture to search by is at most 50 MB.`, true);
      continue;
    }
    try {
      const key = `p${++pictureSeq}`;
      pictures.set(key, { name: file.name || "pasted picture", data: await base64(file), size: file.size });
      keys.push(key);
    } catch (err) {
      setMessage(`Could not read ${file.name}: ${err?.message ?? err}`, true);
    }
  }
  if (keys.length) go({ ...readForm(), pics: [...current.pics, ...keys] }, true);
}

let draggedId = null;  // a result of this page being dragged (onto the search bar: "like this")

function dropKind(event) {
  const types = [...(event.dataTransfer?.types ?? [])];
  if (draggedId) return event.target.closest?.("header") ? "result" : null;
  if (types.includes("Files")) return "files";
  return null;
}

document.addEventListener("dragover", (event) => {
  if (!dropKind(event)) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
  document.body.classList.add("dropping");
});
document.addEventListener("dragleave", (event) => {
  if (!event.relatedTarget) document.body.classList.remove("dropping");
});
document.addEventListener("drop", (event) => {
  document.body.classList.remove("dropping");
  const kind = dropKind(event);
  if (!kind) return;
  event.preventDefault();
  if (kind === "result") addLike(draggedId);
  else addPictures(event.dataTransfer.files);
  draggedId = null;
});
document.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData?.files ?? [])];
  if (!files.length) return;  // text pastes into the box as usual
  event.preventDefault();
  addPictures(files);
});
$("add-picture").addEventListener("click", () => fileInput.click());
fileInput.addEventListener("change", () => {
  if (fileInput.files.length) addPictures(fileInput.files);
  fileInput.value = "";
});

// ---- filters: folders, dates, camera, sort -----------------------------------------------------

async function loadFacets() {
  try {
    facets = await api("api/facets");
  } catch {
    return;  // the status line says why
  }
  renderFolders();
  renderCameras();
}

function folderOption(path, label, count, depth) {
  const box = el("input", { type: "checkbox", value: path, checked: current.in.includes(path) });
  return el("li", { class: depth ? "sub" : "" },
    el("label", { title: path }, box, el("span", { class: "name" }, el("bdi", {}, label)),
       count == null ? null : el("span", { class: "count" }, String(count))));
}

function renderFolders() {
  const rows = [], listed = new Set();
  for (const root of facets.roots ?? []) {
    rows.push(folderOption(root.path, root.path, root.count, 0));
    listed.add(root.path);
    for (const sub of facets.folders ?? []) {
      if (sub.path.slice(0, sub.path.lastIndexOf("/")) === root.path.replace(/\/$/, "")) {
        rows.push(folderOption(sub.path, basename(sub.path), sub.count, 1));
        listed.add(sub.path);
      }
    }
  }
  for (const sub of facets.folders ?? []) {  // below a root the service did not name
    if (!listed.has(sub.path)) { rows.push(folderOption(sub.path, sub.path, sub.count, 0)); listed.add(sub.path); }
  }
  for (const path of current.in) if (!listed.has(path)) rows.push(folderOption(path, path, null, 0));
  folderList.replaceChildren(...rows);
  folderMenu.hidden = rows.length === 0;
  $("folders-summary").textContent = current.in.length === 0 ? "all"
    : current.in.length === 1 ? basename(current.in[0]) : `${current.in.length} folders`;
}

function renderCameras() {
  const names = (facets.cameras ?? []).map((c) => [c.name, `${c.name} (${c.count})`]);
  if (current.camera && !names.some(([name]) => name === current.camera)) names.push([current.camera, current.camera]);
  cameraBox.replaceChildren(el("option", { value: "" }, "any"),
                            ...names.map(([name, label]) => el("option", { value: name }, label)));
  cameraBox.value = current.camera;
  $("camera-filter").hidden = names.length === 0;  // pictures without EXIF: no camera to choose
}

function filterChanged() {
  for (const box of [fromBox, untilBox]) {
    const value = box.value.trim();
    box.setCustomValidity(value && !PERIOD.test(value) ? "A year (2021), a month (2021-06) or a day (2021-06-30)" : "");
  }
  if (!fromBox.checkValidity() || !untilBox.checkValidity()) {
    (fromBox.checkValidity() ? untilBox : fromBox).reportValidity();
    return;
  }
  depthBox.disabled = !rerankBox.checked;
  go(readForm(), true);
}

folderList.addEventListener("change", filterChanged);
for (const box of [fromBox, untilBox, cameraBox, sortBox, modeBox, rerankBox, depthBox, countBox]) {
  box.addEventListener("change", filterChanged);
}
for (const box of [fromBox, untilBox]) box.addEventListener("input", () => box.setCustomValidity(""));
$("clear-filters").addEventListener("click", () => {
  go({ ...readForm(), in: [], from: "", until: "", camera: "", tags: [] }, true);
});
folderMenu.addEventListener("toggle", () => { if (folderMenu.open) loadFacets(); });
folderMenu.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && folderMenu.open) {
    event.preventDefault();
    folderMenu.open = false;
    folderMenu.querySelector("summary").focus();
  }
});
document.addEventListener("click", (event) => {
  if (folderMenu.open && !folderMenu.contains(event.target)) folderMenu.open = false;
});

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

/** Set while the Back that closing the large view asked for has not happened yet: opening it again
 * before then would take over the entry that Back is about to leave, and be closed by it. */
let backPending = null;

/** The large view has its own history entry, so a phone's Back button closes it. */
function openViewer(index, push = true) {
  if (backPending && !viewer.open) {
    backPending.then(() => openViewer(index, push));
    return;
  }
  const hit = hits[index];
  if (!hit) return;
  currentIndex = index;
  const img = $("viewer-img");
  img.src = imageUrl(hit.id, "original");
  img.alt = "";  // the caption is the dialog's heading, right next to it
  $("viewer-caption").textContent = hit.caption || hit.name;
  $("viewer-name").textContent = hit.name;
  const path = $("viewer-path");
  path.value = hit.path;
  const dims = hit.width && hit.height ? `${hit.width} × ${hit.height} px` : null;
  $("viewer-size").textContent = [dims, bytes(hit.size)].filter(Boolean).join(" · ") || "unknown";
  $("viewer-date").textContent = when(hit);
  $("viewer-camera").textContent = hit.camera || "—";
  $("viewer-scores").textContent = scorePairs(hit).join(" · ") || "—";
  $("viewer-why").textContent = whyText(hit) ?? "—";
  $("viewer-text").textContent = hit.text || "—";
  $("viewer-tags").replaceChildren(tagButtons(hit) ?? "—");
  $("teach-name").value = current.concepts[0] ?? "";
  $("viewer-original").href = imageUrl(hit.id, "original");
  $("viewer-prev").disabled = index === 0;
  $("viewer-next").disabled = index === hits.length - 1;
  note();
  const entry = { ...(history.state ?? {}), viewer: hit.id };
  if (!viewer.open) {
    if (push && history.state?.viewer == null) history.pushState(entry, "", location.href);
    else history.replaceState(entry, "", location.href);
    viewer.showModal();
  } else {
    history.replaceState(entry, "", location.href);
  }
  path.scrollLeft = path.scrollWidth;  // the file name, at the end, is what matters
}

/** After a reload or Forward onto the large view's entry: open it again (or forget it). */
function reopenViewer() {
  const id = history.state?.viewer;
  if (id == null || viewer.open) return;
  const index = hits.findIndex((hit) => hit.id === id);
  if (index >= 0) openViewer(index, false);
  else history.replaceState({ ...history.state, viewer: null }, "", location.href);
}

function step(delta) {
  const next = currentIndex + delta;
  if (next >= 0 && next < hits.length) openViewer(next);
  if (next >= hits.length - 3) loadMore();  // stepping near the end brings the next page
}

async function reveal() {
  const hit = hits[currentIndex];
  try {
    const body = await api(`api/images/${encodeURIComponent(hit.id)}/reveal`, { method: "POST" });
    if (body.opened) note("Opened the folder.");
    else note("This machine could not open the folder; its path: ", el("code", {}, body.folder));
  } catch (err) {
    note(`Could not open the folder: ${err.message} Its path: `, el("code", {}, hit.folder));
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
/** Close the large view. Its history entry is left here, at the moment of closing, not in the
 * dialog's "close" event: that event comes a task later, by when Back, Forward or a new view may
 * have moved the history (a Back from there would close the view just reopened). Closed by a
 * Back (`byHistory`), the entry is already left. */
function closeViewer(byHistory = false) {
  if (!viewer.open) return;
  leaveViewerEntry(byHistory);
  viewer.close();
}

function leaveViewerEntry(byHistory) {
  if (byHistory || history.state?.viewer == null) return;
  backPending = new Promise((resolve) => {
    const settle = () => { backPending = null; window.removeEventListener("popstate", settle); resolve(); };
    window.addEventListener("popstate", settle);
    setTimeout(settle, 1000);  // a Back the browser dropped must not block the view for good
  });
  history.back();
}

viewer.addEventListener("cancel", () => leaveViewerEntry(false));  // Escape: the dialog closes itself next
viewer.addEventListener("close", () => {
  $("viewer-img").removeAttribute("src");
  grid.querySelector(`[data-index="${currentIndex}"]`)?.focus();
});
viewer.addEventListener("click", (event) => { if (event.target === viewer) closeViewer(); });  // backdrop
$("viewer-close").addEventListener("click", () => closeViewer());
$("viewer-prev").addEventListener("click", () => step(-1));
$("viewer-next").addEventListener("click", () => step(1));
$("viewer-reveal").addEventListener("click", reveal);
$("viewer-copy").addEventListener("click", copyPath);
$("viewer-similar").addEventListener("click", () => addLike(hits[currentIndex].id));

// ---- concepts taught by example: the large view adds its picture to one; the menu searches by one --

async function loadConcepts() {
  try {
    conceptNames = (await api("api/concepts")).concepts.map((c) => c.name);
  } catch {
    return;  // the status line says why
  }
  renderConcepts();
}

function renderConcepts() {
  const box = $("concept");
  box.replaceChildren(el("option", { value: "" }, "none"), ...conceptNames.map((name) => el("option", { value: name }, name)));
  box.value = current.concepts.find((name) => conceptNames.includes(name)) ?? "";
  $("concept-filter").hidden = conceptNames.length === 0;
  $("teach-names").replaceChildren(...conceptNames.map((name) => el("option", { value: name })));
}

$("concept").addEventListener("change", (event) => {
  const name = event.target.value;
  go({ ...readForm(), concepts: name ? [name] : [] }, true);
});

/** The large view's picture becomes an example of the concept named (a new one, or one more
 * example: the service retrains it on all of them). */
$("teach").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("teach-name").value.trim(), hit = hits[currentIndex];
  if (!CONCEPT_NAME.test(name)) {
    note("A concept's name is letters, digits and . _ - (up to 64), starting with a letter or digit.");
    return;
  }
  note(`Teaching ${name}…`);
  try {
    const report = await api("api/concepts", { method: "POST", headers: { "Content-Type": "application/json" },
                                               body: JSON.stringify({ name, positives: [{ path: hit.path }] }) });
    if (!report.concept) {
      note(`Could not use this picture: ${(report.skipped[0]?.reason) ?? "not in the index"}.`);
      return;
    }
    const shown = el("button", { type: "button", class: "quiet" }, `Show ${name}`);
    shown.addEventListener("click", () => go({ ...EMPTY, concepts: [name] }, true));
    note(`${name} now has ${report.concept.positives.length} example(s). `, shown);
    await loadConcepts();
  } catch (err) {
    note(`Could not teach ${name}: ${err.message}`);
  }
});

// ---- the service's status: progress of the whole job, new pictures -------------------------------

// The service reports one batch at a time (done/total restart with each batch, `queued` counts what
// waits). The page adds the batches of one busy spell up, so the bar covers the whole job.
let job = null;

function progressOf(status) {
  const a = status.activity ?? { state: "idle" };
  if (a.state === "idle") { job = null; return null; }
  const kind = a.state === "captions" ? "captions" : a.state === "rerank cache" ? "rerank" : "index";
  if (!job || job.kind !== kind) job = { kind, base: 0, done: 0, total: a.total };
  else if (a.total !== job.total || a.done < job.done) job.base += job.total ?? 0;  // a new batch
  job.done = a.done;
  job.total = a.total;
  const done = job.base + a.done;
  const total = a.total == null ? null
    : kind === "captions" ? done + (status.pending_captions ?? Math.max(0, a.total - a.done))
    : job.base + a.total + (a.queued ?? 0);
  return { state: a.state, phase: a.phase, done, total: total == null ? null : Math.max(total, done), queued: a.queued ?? 0,
           note: a.note ?? null };
}

function activityText(p) {
  const text = phaseText(p);
  return p.note ? `${text} (${p.note}…)` : text;  // a one-off wait within the phase: a build, say
}

function phaseText(p) {
  const of = p.total != null ? `${p.done} of ${p.total}` : null;
  const waiting = p.queued ? `, ${p.queued} more waiting` : "";
  switch (p.state) {
    case "scanning": return of ? `Indexing pictures: ${of}${waiting}` : "Looking for new or changed pictures…";
    case "vectors": return `Indexing pictures: ${of ?? p.done}${waiting}`;
    case "events": return of ? `Indexing changed pictures: ${of}${waiting}` : `Updating changed files: ${p.queued} waiting`;
    case "search index": return "Building the search index…";
    case "captions": return `Writing captions: ${of ?? p.done}`;
    case "rerank cache": return `Preparing reranking: ${of ?? p.done}`;
    case "query towers": return "Preparing faster searches…";
    default: return p.phase ? `${p.state} (${p.phase})` : p.state;
  }
}

function renderStatus(s) {
  const p = progressOf(s);
  const parts = [`${s.images} pictures`, `${s.vectors ?? "?"} vectors`];
  if (s.pending_vectors) parts.push(`${s.pending_vectors} vectors pending`);
  if (s.pending_captions) parts.push(`${s.pending_captions} captions pending`);
  const text = [p ? activityText(p) : null, parts.join(" · ")].filter(Boolean).join(" — ");
  const line = $("status-text");
  if (line.textContent !== text) line.textContent = text;
  const box = $("status");
  box.classList.toggle("busy", Boolean(p));
  box.classList.remove("down");
  const bar = $("status-progress");
  bar.hidden = !p;
  if (p && p.total) { bar.max = p.total; bar.value = p.done; } else bar.removeAttribute("value");
  noticeNew(s.vectors);
}

/** New pictures indexed since the shown search ran: offer to run it again. */
function noticeNew(vectors) {
  if (typeof vectors !== "number") return;
  lastVectors = vectors;
  if (baseVectors == null || vectors < baseVectors) baseVectors = vectors;
  const added = vectors - baseVectors;
  freshButton.hidden = !(shownState && isActive(shownState) && added > 0);
  if (!freshButton.hidden) {
    freshButton.textContent = `${added} new picture${added === 1 ? "" : "s"} — refresh`;
  }
}

freshButton.addEventListener("click", () => {
  freshButton.hidden = true;
  loadFacets();
  if (shownState) run(shownState);
});

async function pollStatus() {
  try {
    renderStatus(await api("api/status"));
  } catch (err) {
    $("status-text").textContent = err.message === NOT_RUNNING ? NOT_RUNNING : `Service not answering (${err.message})`;
    $("status").classList.add("down");
    $("status").classList.remove("busy");
    $("status-progress").hidden = true;
  }
  setTimeout(pollStatus, document.hidden ? 5 * POLL_MS : POLL_MS);
}

// ---- wiring --------------------------------------------------------------------------------

form.addEventListener("submit", (event) => {
  event.preventDefault();
  filterChanged();
});
moreButton.addEventListener("click", loadMore);
window.addEventListener("popstate", (event) => {
  if (event.state?.viewer == null) closeViewer(true);  // Back closes the large view
  const state = readURL(event.state);
  fillForm(state);
  if (keyOf(state) !== wantedKey) run(state);
  else reopenViewer();  // Forward onto the large view's entry
});

{
  const state = readURL();
  const url = urlOf(state);  // also drops a first visit's ?token=… from the address bar
  history.replaceState(history.state, "", url);
  fillForm(state);
  run(state);
  loadFacets();
  loadConcepts();
  pollStatus();
}
