// The search page: talks only to this server's /api and /images; no framework, no CDN.
"use strict";

const PAGE_SIZE = 24;
const FACETS = [
  ["gender", "Gender"], ["masterCategory", "Category"], ["articleType", "Article type"],
  ["baseColour", "Colour"], ["season", "Season"], ["usage", "Usage"],
];
const FACET_PREVIEW = 8; // longer lists fold behind "Show all"
const COLOURS = {
  black: "#1f1f1f", white: "#f4f4f4", red: "#c8232c", "navy blue": "#1c2a5a", blue: "#2f6bd8",
  green: "#2e9447", yellow: "#e9c21e", pink: "#f08aaa", grey: "#8a8a8a", brown: "#7a4a22",
  purple: "#7b3fa0", orange: "#f08a24", beige: "#e4d5b7", maroon: "#7a1f2b", olive: "#7d7a2e",
  silver: "#c0c4c8", gold: "#d4a93a", "off white": "#f2eee3", cream: "#f3ead2", khaki: "#b9a978",
  teal: "#1f8a86", magenta: "#c2188f", charcoal: "#3a3d42", "turquoise blue": "#2cc3c6",
  "grey melange": "#a6a7aa", peach: "#f6c0a0", lavender: "#b8a5dc", mustard: "#d6a51f",
  "sea green": "#2e8b66", rust: "#a8472a", tan: "#c79a6b", "lime green": "#8bc53f", coffee: "#5a3a24",
  copper: "#b0653a", bronze: "#8c6a32", mauve: "#b07f99", burgundy: "#6d1a2a", nude: "#e3bc9a",
  "fluorescent green": "#7cf03b", rose: "#e48aa1", steel: "#7b8896", "skin": "#e2b79a", "taupe": "#8b7d6b",
  "mushroom brown": "#9b8770", "metallic": "#a9aeb4", "multi": "conic",
};

const state = {
  mode: "idle",        // idle | browse (filters, no query) | text | image | similar
  q: "",
  hybrid: true,        // "Match words" (on by default, as in the API): hybrid for text queries; off = mode=clip
  file: null,          // the File searched with, kept for "load more"
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
                    "pv-attributes", "pv-similar", "pv-close"]) {
    els[id] = $(id);
  }
  els["search-form"].addEventListener("submit", (event) => {
    event.preventDefault();
    const q = els.q.value.trim();
    if (!q) { showError("Type a few words to search for, or search by photo."); els.q.focus(); return; }
    startText(q);
  });
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
  els["load-more"].addEventListener("click", () => search(false));
  els["filters-toggle"].addEventListener("click", () => {  // small screens fold the filters away
    const open = els.facets.closest(".filters").classList.toggle("open");
    els["filters-toggle"].setAttribute("aria-expanded", String(open));
    els["filters-toggle"].textContent = open ? "Hide" : "Show";
  });
  els["match-words"].addEventListener("change", () => {
    state.hybrid = els["match-words"].checked;
    if (state.mode === "text") startText(state.q);
  });
  setUpDragAndDrop();

  els["pv-close"].addEventListener("click", closeProduct);
  els["product-view"].addEventListener("cancel", (event) => { event.preventDefault(); closeProduct(); });  // Escape
  els["pv-similar"].addEventListener("click", () => {
    const product = viewed;
    closeProduct();
    startSimilar(product);
  });
  // Every search state is a URL: Back and Forward step through them, and a shared link reproduces one.
  window.addEventListener("popstate", restoreFromUrl);
  restoreFromUrl();
});

// --- the URL is the state ------------------------------------------------------------------------

const URL_KEYS = new Set(["q", "mode", "like"]);

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
  } else if (state.mode === "similar") {
    params.set("like", state.product.id);
  }
  filterParams(params);
  const query = params.toString();
  return "/" + (query ? "?" + query : "");
}

function remember() {
  // A photo search cannot live in a URL (the photo stays in this tab); it keeps the URL it came from.
  if (state.mode === "image") return;
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
  const q = params.get("q");
  const like = params.get("like");
  els.q.value = q || "";
  if (q) {
    Object.assign(state, { mode: "text", q, file: null, product: null });
  } else if (like) {
    let title = like;
    try { title = (await answer(await fetch(`/api/products/${encodeURIComponent(like)}`))).title; } catch { /* shown as its id */ }
    Object.assign(state, { mode: "similar", q: "", file: null,
                           product: { id: like, title, image: `/images/${encodeURIComponent(like)}` } });
  } else {
    Object.assign(state, { mode: state.filters.size ? "browse" : "idle", q: "", file: null, product: null });
  }
  if (state.mode === "idle") reset(false); else search(true);
}

// --- starting searches -------------------------------------------------------------------------

function startText(q) {
  Object.assign(state, { mode: "text", q, file: null, product: null });
  remember();
  refresh();
}

function startImage(file) {
  if (!file.type.startsWith("image/")) { showError(`“${file.name}” is not an image.`); return; }
  Object.assign(state, { mode: "image", file, product: null });
  refresh();
}

function startSimilar(product) {
  Object.assign(state, { mode: "similar", product, file: null });
  remember();
  refresh();
  els.results.focus({ preventScroll: true });
  window.scrollTo({ top: 0, behavior: "smooth" });
}

function reset(record = true) {
  Object.assign(state, { mode: "idle", q: "", file: null, product: null, offset: 0, total: 0 });
  state.filters.clear();
  if (record) remember();
  els.grid.replaceChildren();
  els.welcome.hidden = false;
  els["load-more"].hidden = true;
  els.status.textContent = "";
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

async function search(fresh) {
  const ticket = ++state.request;
  const offset = fresh ? 0 : state.offset;
  const params = filterParams(new URLSearchParams({ k: PAGE_SIZE, offset }));
  let request;
  if (state.mode === "text") {
    params.set("q", state.q);
    params.set("mode", state.hybrid ? "hybrid" : "clip");
    request = fetch("/api/search?" + params);
  } else if (state.mode === "browse") {
    request = fetch("/api/products?" + params);
  } else if (state.mode === "image") {
    const form = new FormData();
    form.append("file", state.file, state.file.name || "photo");
    request = fetch("/api/search/image?" + params, { method: "POST", body: form });
  } else {
    request = fetch(`/api/products/${encodeURIComponent(state.product.id)}/similar?` + params);
  }
  setBusy(true);
  hideError();
  if (fresh) loadFacets();
  try {
    const body = await answer(await request);
    if (ticket !== state.request) return;
    state.offset = offset + body.hits.length;
    state.total = body.total;
    render(body, fresh);
  } catch (err) {
    if (ticket === state.request) showError(err.message);
  } finally {
    if (ticket === state.request) setBusy(false);
  }
}

async function loadFacets() {
  const ticket = state.request;
  // Counts over the filtered catalogue (not the query's top results), so a facet's count is the
  // number of results ticking it gives; it also spares the server a second text encoding.
  // A group with values ticked counts under every filter but its own, so its other values stay in
  // view with the counts that adding them would give (values within a group are "any of").
  const groups = [...state.filters.keys()];
  try {
    const [all, ...own] = await Promise.all([filterParams(), ...groups.map((g) => filterParams(undefined, g))]
      .map(async (params) => (await answer(await fetch("/api/facets?" + params))).facets));
    const facets = { ...all };
    groups.forEach((group, i) => { if (own[i][group]) facets[group] = own[i][group]; });
    if (ticket === state.request) renderFacets(facets);
  } catch (err) {
    els.facets.replaceChildren(paragraph("Filters are unavailable: " + err.message, "muted"));
  }
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

function render(body, fresh) {
  els.welcome.hidden = true;
  if (fresh) els.grid.replaceChildren();
  const cards = document.createDocumentFragment();
  for (const hit of body.hits) cards.append(card(hit));
  els.grid.append(cards);
  renderMode();
  const shown = els.grid.children.length;
  const what = state.mode === "text" ? `ranked for “${state.q}”`
    : state.mode === "browse" ? "with these filters"
    : state.mode === "image" ? "that look like your photo" : `like “${state.product.title}”`;
  els["results-title"].textContent = state.mode === "text" ? `Results for “${state.q}”`
    : state.mode === "browse" ? "Browsing the catalogue"
    : state.mode === "image" ? "Similar to your photo" : "More like this";
  els.status.replaceChildren();
  if (!shown) {
    els.status.textContent = `No products ${what} match these filters.`;
  } else {
    els.status.append(`Showing ${shown} of ${body.total.toLocaleString()} products ${what} `);
    const took = document.createElement("span");
    took.className = "took";
    took.dataset.testid = "took";
    took.textContent = `${formatMs(body.took_ms)}`;
    els.status.append(took);
  }
  els.notice.hidden = !body.notice;
  els.notice.textContent = body.notice || "";
  els["load-more"].hidden = !body.has_more;
  els["load-more"].textContent = `Load more (${Math.min(PAGE_SIZE, body.total - shown)} of ${(body.total - shown).toLocaleString()} left)`;
}

const KNOWN_ATTRIBUTES = new Set(["gender", "masterCategory", "subCategory", "articleType", "baseColour",
                                  "season", "year", "usage"]);

function card(hit) {
  const node = els["card-template"].content.firstElementChild.cloneNode(true);
  const attrs = hit.attributes || {};
  const img = node.querySelector("img");
  img.src = hit.image_url;
  img.alt = hit.title;
  node.dataset.id = hit.id;
  const link = document.createElement("a");  // a real link: keyboard, middle-click and "copy link" work
  link.href = `/p/${encodeURIComponent(hit.id)}`;
  link.textContent = hit.title;
  link.dataset.testid = "card-link";
  link.addEventListener("click", (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    openProduct(hit);
  });
  node.querySelector(".card-title").replaceChildren(link);
  node.querySelector(".card-colour").textContent = attrs.baseColour || "—";
  node.querySelector(".card-type").textContent = attrs.articleType || attrs.subCategory || "";
  paintSwatch(node.querySelector(".swatch"), attrs.baseColour);
  // The catalogue's own columns (price, brand, ...) after the ones every catalogue has.
  const extra = Object.entries(attrs).filter(([k, v]) => !KNOWN_ATTRIBUTES.has(k) && v !== null && v !== "");
  if (extra.length) {
    const line = document.createElement("p");
    line.className = "card-extra";
    line.dataset.testid = "card-extra";
    line.textContent = extra.map(([k, v]) => `${k} ${typeof v === "number" ? v.toLocaleString() : v}`).join(" · ");
    node.querySelector(".card-title").after(line);
  }
  const score = node.querySelector(".score");
  score.hidden = state.mode === "browse";  // catalogue order: there is no score to show
  score.textContent = hit.score.toFixed(1);
  score.title = `CLIP score ${hit.score.toFixed(2)} (100 × cosine similarity), rank ${hit.rank}`;
  const more = node.querySelector(".more-like-this");
  more.setAttribute("aria-label", `More like ${hit.title}`);
  more.addEventListener("click", () => startSimilar({ id: hit.id, title: hit.title, image: hit.image_url }));
  img.addEventListener("click", () => openProduct(hit));
  return node;
}

function renderMode() {
  const chip = els["mode-chip"];
  const thumb = els["mode-thumb"];
  if (state.mode === "image" || state.mode === "similar") {
    chip.hidden = false;
    if (thumb.dataset.blob) URL.revokeObjectURL(thumb.dataset.blob);
    delete thumb.dataset.blob;
    if (state.mode === "image") {
      thumb.src = thumb.dataset.blob = URL.createObjectURL(state.file);
      els["mode-text"].textContent = state.file.name || "your photo";
    } else {
      thumb.src = state.product.image;
      els["mode-text"].textContent = state.product.title;
    }
    thumb.hidden = false;
  } else {
    chip.hidden = true;
  }
}

function renderFacets(facets) {
  const groups = document.createDocumentFragment();
  for (const [column, label] of FACETS) {
    const counts = facets[column];
    if (!counts) continue;
    const chosen = state.filters.get(column) || new Set();
    const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    for (const value of chosen) if (!(value in counts)) entries.unshift([value, 0]);
    if (!entries.length) continue;
    const fieldset = document.createElement("fieldset");
    fieldset.className = "facet";
    fieldset.dataset.testid = `facet-${column}`;
    const legend = document.createElement("legend");
    legend.textContent = label;
    fieldset.append(legend);
    const list = document.createElement("ul");
    entries.forEach(([value, count], i) => {
      const item = document.createElement("li");
      if (i >= FACET_PREVIEW && !chosen.has(value)) item.className = "folded";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.id = `f-${column}-${i}`;
      input.checked = chosen.has(value);
      input.dataset.testid = "facet-option";
      input.dataset.column = column;
      input.dataset.value = value;
      input.addEventListener("change", () => toggleFilter(column, value, input.checked));
      const labelEl = document.createElement("label");
      labelEl.htmlFor = input.id;
      const name = document.createElement("span");
      name.className = "facet-name";
      if (column === "baseColour") {
        const sw = document.createElement("span");
        sw.className = "swatch";
        paintSwatch(sw, value);
        name.append(sw);
      }
      name.append(value);
      const n = document.createElement("span");
      n.className = "count";
      n.textContent = count.toLocaleString();
      labelEl.append(name, n);
      item.append(input, labelEl);
      list.append(item);
    });
    fieldset.append(list);
    if (entries.length > FACET_PREVIEW) {
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "link-button";
      toggle.setAttribute("aria-expanded", "false");
      toggle.textContent = `Show all ${entries.length}`;
      toggle.addEventListener("click", () => {
        const open = fieldset.classList.toggle("open");
        toggle.setAttribute("aria-expanded", String(open));
        toggle.textContent = open ? "Show fewer" : `Show all ${entries.length}`;
      });
      fieldset.append(toggle);
    }
    groups.append(fieldset);
  }
  // Keep keyboard focus on the same checkbox across the re-render.
  const focused = document.activeElement && document.activeElement.dataset;
  const again = focused && focused.testid === "facet-option" ? [focused.column, focused.value] : null;
  els.facets.replaceChildren(groups);
  if (again) {
    const match = [...els.facets.querySelectorAll("input")].find(
      (i) => i.dataset.column === again[0] && i.dataset.value === again[1]);
    if (match) match.focus();
  }
  renderFilterState();
}

function toggleFilter(column, value, on) {
  const values = state.filters.get(column) || new Set();
  if (on) values.add(value); else values.delete(value);
  if (values.size) state.filters.set(column, values); else state.filters.delete(column);
  if (state.mode === "idle" && state.filters.size) state.mode = "browse";
  remember();
  refresh();
}

function renderFilterState() {
  const chosen = [...state.filters.values()].reduce((n, values) => n + values.size, 0);
  els["clear-filters"].hidden = chosen === 0;
  els["filter-count"].hidden = chosen === 0;
  els["filter-count"].textContent = String(chosen);
}

function setBusy(busy) {
  state.busy = busy;
  document.body.classList.toggle("busy", busy);
  els.grid.setAttribute("aria-busy", String(busy));
  els["load-more"].disabled = busy;
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

function paintSwatch(element, colour) {
  const css = COLOURS[String(colour || "").toLowerCase()];
  if (css === "conic") element.classList.add("multi");
  else if (css) element.style.backgroundColor = css;
  else element.classList.add("unknown");
}

function formatMs(ms) {
  return ms < 1000 ? `in ${Math.round(ms)} ms` : `in ${(ms / 1000).toFixed(2)} s`;
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
