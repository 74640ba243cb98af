// The search page: talks only to this server's /api and /images; no framework, no CDN.
"use strict";

const PAGE_SIZE = 24;

const state = {
  mode: "idle",        // idle | browse (filters, no query) | text | image | similar
  q: "",
  hybrid: true,        // "Match words" (on by default, as in the API): hybrid for text queries; off = mode=clip
  file: null,          // the File being uploaded; once the server keeps it, `upload` names it
  upload: null,        // the server's id for the photo searched with (/api/search/image/{id}): it lives in the URL
  sort: "relevance",   // or a numeric column: "price" low to high, "-price" high to low
  product: null,       // {id, title} for "more like this"
  filters: new Map(),  // column -> Set of values
  offset: 0,
  total: 0,
  busy: false,
  request: 0,          // a newer search makes older answers stale
};

const $ = (id) => document.getElementById(id);
const els = {};

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["search-form", "q", "upload-button", "file-input", "facets", "clear-filters", "status",
                    "results-title", "mode-chip", "mode-thumb", "mode-text", "mode-clear", "notice", "error",
                    "welcome", "grid", "load-more", "dropzone", "card-template", "results",
                    "filters-toggle", "filter-count", "match-words", "product-view", "pv-image", "pv-title",
                    "pv-attributes", "pv-similar", "pv-edit", "pv-close", "sort", "sort-field", "no-match", "no-match-title",
                    "no-match-list", "show-anyway", "show-results", "input-note", "active-filters"]) {
    els[id] = $(id);
  }
  els["search-form"].addEventListener("submit", (event) => {
    event.preventDefault();
    const q = els.q.value.trim();
    if (!q) { showError("Type a few words to search for, or search by photo."); els.q.focus(); return; }
    performance.clearMarks("search-start");
    performance.mark("search-start");  // Enter -> results painted, measured in render() ("search-to-paint")
    startText(q);
  });
  els.q.addEventListener("input", () => {  // a long paste is cut where the server would cut it, and says so
    const typed = els.q.value.length;
    els["input-note"].hidden = typed <= MAX_QUERY;
    if (typed > MAX_QUERY) {
      els.q.value = els.q.value.slice(0, MAX_QUERY);
      els["input-note"].textContent = `Your text was ${typed.toLocaleString()} characters; searches read the first ${MAX_QUERY}.`;
    }
  });
  els.sort.addEventListener("change", () => {
    state.sort = els.sort.value;
    if (state.mode !== "idle") { remember(); search(true); }
  });
  els["show-anyway"].addEventListener("click", () => { els["no-match"].hidden = true; els.grid.hidden = false; });
  for (const button of document.querySelectorAll(".suggestion")) {
    button.addEventListener("click", () => { els.q.value = button.textContent; startText(button.textContent); });
  }
  els["upload-button"].addEventListener("click", () => els["file-input"].click());
  els["file-input"].addEventListener("change", () => {
    const file = els["file-input"].files[0];
    if (file) startImage(file);
    els["file-input"].value = "";
  });
  els["mode-clear"].addEventListener("click", () => {
    if (state.q) startText(state.q); else reset();
    els.q.focus();
  });
  els["clear-filters"].addEventListener("click", () => { state.filters.clear(); remember(); refresh(); });
  els["load-more"].addEventListener("click", () => { if (!state.busy) search(false); });
  els["filters-toggle"].addEventListener("click", () => openSheet(!els.facets.closest(".filters").classList.contains("open")));
  els["show-results"].addEventListener("click", showResults);
  els["match-words"].addEventListener("change", () => {
    state.hybrid = els["match-words"].checked;
    if (state.mode === "text") startText(state.q);
  });
  setUpDragAndDrop();

  els["pv-close"].addEventListener("click", closeProduct);
  els["product-view"].addEventListener("cancel", (event) => { event.preventDefault(); closeProduct(); });  // Escape
  els["pv-similar"].addEventListener("click", () => {
    const product = viewed;
    const edit = els["pv-edit"].value.trim();  // "like this, but in red": /similar?edit=
    els["pv-edit"].value = "";
    closeProduct();
    startSimilar(edit ? { ...product, edit } : product);
  });
  els["pv-edit"].addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); els["pv-similar"].click(); }
  });
  // Every search state is a URL: Back and Forward step through them, and a shared link reproduces one.
  window.addEventListener("popstate", restoreFromUrl);
  restoreFromUrl();
});

// --- the URL is the state ------------------------------------------------------------------------

const URL_KEYS = new Set(["q", "mode", "like", "edit", "photo", "sort", "shown"]);
const MAX_RESTORED = 10 * PAGE_SIZE;  // a shared link asks for at most this many results back
const MAX_QUERY = 512;  // the server's limit on q

// --- the product view: /p/{id}, over the search it was opened from --------------------------------

let viewed = null;  // {id, title, image} of the product in the dialog

function productId() {
  const match = location.pathname.match(/^\/p\/([^/]+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

function openProduct(hit) {
  history.pushState({ product: true }, "", `/p/${encodeURIComponent(hit.id)}` + location.search);
  showProduct(hit.id);
}

function closeProduct() {
  if (!els["product-view"].open) return;
  if (history.state && history.state.product) history.back();  // opened here: Back is the way out
  else { history.pushState(null, "", "/" + location.search); els["product-view"].close(); }
}

async function showProduct(id) {
  const dialog = els["product-view"];
  let product;
  try { product = await answer(await fetch(`/api/products/${encodeURIComponent(id)}`)); } catch (err) {
    showError(err.message);
    return;
  }
  viewed = { id: product.id, title: product.title, image: product.image_url };
  els["pv-image"].src = product.image_url;
  capToNatural(els["pv-image"], 3);  // the larger view: three times a small photo's size, no more
  els["pv-image"].alt = product.title;
  els["pv-title"].textContent = product.title;
  const rows = document.createDocumentFragment();
  for (const [name, value] of Object.entries(product.attributes || {})) {
    if (value === null || value === "") continue;
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = typeof value === "number" ? value.toLocaleString() : value;
    rows.append(dt, dd);
  }
  els["pv-attributes"].replaceChildren(rows);
  if (!dialog.open) dialog.showModal();
  els["pv-close"].focus();
}

function urlFor() {
  const params = new URLSearchParams();  // the product view's /p/{id} closes on any new search
  if (state.mode === "text") {
    params.set("q", state.q);
    if (!state.hybrid) params.set("mode", "clip");
  } else if (state.mode === "image") {
    params.set("photo", state.upload);
  } else if (state.mode === "similar") {
    params.set("like", state.product.id);
    if (state.product.edit) params.set("edit", state.product.edit);
  }
  filterParams(params);
  if (state.sort !== "relevance") params.set("sort", state.sort);
  const query = params.toString();
  return "/" + (query ? "?" + query : "");
}

function remember() {
  // A photo search enters the URL once the server has kept the photo and named it (state.upload).
  if (state.mode === "image" && !state.upload) return;
  const url = urlFor();
  if (url !== location.pathname + location.search) history.pushState(null, "", url);
  shownSearch = location.search;
}

let shownSearch = null;  // the search part of the URL the results on screen belong to

async function restoreFromUrl() {
  const id = productId();
  if (id) showProduct(id);
  else if (els["product-view"].open) els["product-view"].close();
  if (shownSearch === location.search && (id || els.grid.children.length)) return;  // only the dialog changed
  shownSearch = location.search;
  const params = new URLSearchParams(location.search);
  state.filters = new Map();
  for (const [column, value] of params) {
    if (URL_KEYS.has(column)) continue;
    if (!state.filters.has(column)) state.filters.set(column, new Set());
    state.filters.get(column).add(value);
  }
  state.hybrid = els["match-words"].checked = params.get("mode") !== "clip";
  state.sort = params.get("sort") || "relevance";
  setSortChoice();
  const photo = params.get("photo");
  const q = params.get("q");
  const like = params.get("like");
  els.q.value = q || "";
  if (q) {
    Object.assign(state, { mode: "text", q, file: null, upload: null, product: null });
  } else if (photo) {
    Object.assign(state, { mode: "image", q: "", file: null, upload: photo, product: null });
  } else if (like) {
    let title = like;
    try { title = (await answer(await fetch(`/api/products/${encodeURIComponent(like)}`))).title; } catch { /* shown as its id */ }
    Object.assign(state, { mode: "similar", q: "", file: null,
                           product: { id: like, title, image: `/images/${encodeURIComponent(like)}`,
                                      edit: params.get("edit") || undefined } });
  } else {
    Object.assign(state, { mode: state.filters.size ? "browse" : "idle", q: "", file: null, product: null });
  }
  if (state.mode === "idle") { reset(false); return; }
  // After "Load more" the URL says how many results were shown: bring back as many, page by page.
  const shown = Math.min(parseInt(params.get("shown"), 10) || 0, MAX_RESTORED);
  const ticket = await search(true);
  while (ticket === state.request && state.offset < Math.min(shown, state.total)) {
    const before = state.offset;
    if (await search(false) !== state.request || state.offset === before) break;
  }
}

// --- starting searches -------------------------------------------------------------------------

function startText(q) {
  Object.assign(state, { mode: "text", q, file: null, upload: null, product: null });
  remember();
  refresh();
}

function startImage(file) {
  if (!file.type.startsWith("image/")) { showError(`“${file.name}” is not an image.`); return; }
  Object.assign(state, { mode: "image", q: "", file, upload: null, product: null });
  els.q.value = "";  // the old words are not what is searched for any more
  refresh();
}

function startSimilar(product) {
  Object.assign(state, { mode: "similar", product, file: null, upload: null });
  remember();
  refresh();
  els.results.focus({ preventScroll: true });
  window.scrollTo({ top: 0, behavior: "smooth" });
}

function reset(record = true) {
  Object.assign(state, { mode: "idle", q: "", file: null, upload: null, product: null, offset: 0, total: 0 });
  state.filters.clear();
  if (record) remember();
  els.grid.replaceChildren();
  els.welcome.hidden = false;
  els["load-more"].hidden = true;
  els.status.textContent = "";
  els["no-match"].hidden = true;
  els["results-title"].textContent = "Discover the catalogue";
  renderMode();
  loadFacets();
}

function refresh() {
  // Filters with nothing typed browse the catalogue; dropping the last one goes back to the start.
  if ((state.mode === "idle" || state.mode === "browse") && !state.filters.size) { reset(false); return; }
  if (state.mode === "idle") state.mode = "browse";
  search(true);
}

// --- talking to the API ------------------------------------------------------------------------

function filterParams(params = new URLSearchParams(), except = null) {
  for (const [column, values] of state.filters) {
    if (column === except) continue;
    for (const value of values) params.append(column, value);
  }
  return params;
}

// Returns its ticket: a caller can tell whether a newer search has superseded this one.
async function search(fresh) {
  const ticket = ++state.request;
  const offset = fresh ? 0 : state.offset;
  const params = filterParams(new URLSearchParams({ k: PAGE_SIZE, offset }));
  if (state.sort !== "relevance") params.set("sort", state.sort);
  let request;
  if (state.mode === "text") {
    params.set("q", state.q);
    params.set("mode", state.hybrid ? "hybrid" : "clip");
    request = fetch("/api/search?" + params);
  } else if (state.mode === "browse") {
    request = fetch("/api/products?" + params);
  } else if (state.mode === "image" && state.upload) {  // kept by the server: no second upload, no re-encoding
    request = fetch(`/api/search/image/${encodeURIComponent(state.upload)}?` + params);
  } else if (state.mode === "image") {
    const form = new FormData();
    form.append("file", state.file, state.file.name || "photo");
    request = fetch("/api/search/image?" + params, { method: "POST", body: form });
  } else {
    if (state.product.edit) params.set("edit", state.product.edit);
    request = fetch(`/api/products/${encodeURIComponent(state.product.id)}/similar?` + params);
  }
  setBusy(true);
  hideError();
  try {
    const body = await answer(await request);
    if (ticket !== state.request) return;
    state.offset = offset + body.hits.length;
    state.total = body.total;
    if (state.mode === "image" && body.upload_id && !state.upload) {
      state.upload = body.upload_id;  // the file stays for the chip; the pages after this ask by id
      remember();
    }
    render(body, fresh);
    if (!fresh) {  // the URL keeps how many are shown, so a reload or a shared link shows as many
      const url = new URL(location.href);
      url.searchParams.set("shown", String(state.offset));
      history.replaceState(null, "", url.pathname + url.search);
      shownSearch = location.search;
    }
    // Facets after the results: their requests would otherwise compete with the search for the server.
    if (fresh) loadFacets();
  } catch (err) {
    if (ticket === state.request) showError(err.message);
  } finally {
    if (ticket === state.request) setBusy(false);
  }
  return ticket;
}


async function answer(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : `the server answered ${response.status}`;
    throw new Error(detail);
  }
  return body;
}

// --- rendering ---------------------------------------------------------------------------------


function setBusy(busy) {
  state.busy = busy;
  document.body.classList.toggle("busy", busy);
  els.grid.setAttribute("aria-busy", String(busy));
  // Not `disabled`: a disabled button drops keyboard focus to <body> while the next page loads.
  els["load-more"].setAttribute("aria-disabled", String(busy));
}

function showError(message) {
  els.error.textContent = message;
  els.error.hidden = false;
}

function hideError() {
  els.error.hidden = true;
}

function paragraph(text, className) {
  const p = document.createElement("p");
  p.textContent = text;
  if (className) p.className = className;
  return p;
}


// --- drag and drop -----------------------------------------------------------------------------

function setUpDragAndDrop() {
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  window.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    els.dropzone.hidden = false;
  });
  window.addEventListener("dragover", (event) => { if (hasFiles(event)) event.preventDefault(); });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) els.dropzone.hidden = true;
  });
  window.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    els.dropzone.hidden = true;
    const file = event.dataTransfer.files[0];
    if (file) startImage(file);
  });
}
