// Facet filters: value counts per column, several values per group ("any of"), and on a phone the
// filters as a sheet over the results with "Show N results" to go back to them.
"use strict";

const FACETS = [
  ["gender", "Gender"], ["masterCategory", "Category"], ["articleType", "Article type"],
  ["baseColour", "Colour"], ["season", "Season"], ["usage", "Usage"],
];
const FACET_PREVIEW = 8; // longer lists fold behind "Show all"

async function loadFacets() {
  const ticket = state.request;
  // Counts over the filtered catalogue (not the query's top results), so a facet's count is the
  // number of results ticking it gives; it also spares the server a second text encoding.
  // A group with values ticked counts under every filter but its own, so its other values stay in
  // view with the counts that adding them would give (values within a group are "any of").
  const groups = [...state.filters.keys()];
  try {
    const [all, ...own] = await Promise.all([filterParams(), ...groups.map((g) => filterParams(undefined, g))]
      .map(async (params) => answer(await fetch("/api/facets?" + params))));
    renderSorts(all.sorts);
    const facets = { ...all.facets };
    groups.forEach((group, i) => { if (own[i].facets[group]) facets[group] = own[i].facets[group]; });
    if (ticket === state.request) renderFacets(facets);
  } catch (err) {
    els.facets.replaceChildren(paragraph("Filters are unavailable: " + err.message, "muted"));
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
  renderChips();
  if (state.mode === "idle" && state.filters.size) state.mode = "browse";
  remember();
  refresh();
}

function renderFilterState() {
  const chosen = [...state.filters.values()].reduce((n, values) => n + values.size, 0);
  els["clear-filters"].hidden = chosen === 0;
  els["filter-count"].hidden = chosen === 0;
  els["filter-count"].textContent = String(chosen);
  renderChips();
}

function renderChips() {  // each active filter above the results, removable with one click
  const chips = document.createDocumentFragment();
  const labels = Object.fromEntries(FACETS);
  for (const [column, values] of state.filters) {
    for (const value of values) {
      const item = document.createElement("li");
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip";
      chip.dataset.testid = "filter-chip";
      chip.dataset.column = column;
      chip.dataset.value = value;
      chip.setAttribute("aria-label", `${value}: remove this ${(labels[column] || column).toLowerCase()} filter`);
      const cross = document.createElement("span");
      cross.setAttribute("aria-hidden", "true");
      cross.textContent = "×";
      chip.append(value, cross);
      chip.addEventListener("click", () => {
        const next = (item.nextElementSibling || item.previousElementSibling)?.firstElementChild;
        toggleFilter(column, value, false);  // rebuilds the chips at once
        // The keyboard goes on to a neighbouring chip, or to the results.
        (findChip(next?.dataset.column, next?.dataset.value) || els.results).focus({ preventScroll: true });
      });
      item.append(chip);
      chips.append(item);
    }
  }
  const focused = document.activeElement?.dataset?.testid === "filter-chip" ? document.activeElement.dataset : null;
  els["active-filters"].replaceChildren(chips);
  els["active-filters"].hidden = !els["active-filters"].children.length;
  if (focused) findChip(focused.column, focused.value)?.focus({ preventScroll: true });  // kept across a rebuild
}

function findChip(column, value) {
  return [...els["active-filters"].querySelectorAll("button")]
    .find((b) => b.dataset.column === column && b.dataset.value === value);
}

// --- the phone sheet ---------------------------------------------------------------------------

const PHONE = window.matchMedia("(max-width: 860px)");  // the layout's own breakpoint (app.css)

function openSheet(open) {
  els.facets.closest(".filters").classList.toggle("open", open);
  els["filters-toggle"].setAttribute("aria-expanded", String(open));
  els["filters-toggle"].textContent = open ? "Hide" : "Show";
  document.body.classList.toggle("sheet-open", open && PHONE.matches);  // the page under the sheet stays put
  renderShowResults();
}

function renderShowResults() {
  els["show-results"].textContent = state.mode === "idle" ? "Done" : `Show ${state.total.toLocaleString()} results`;
}

function showResults() {
  openSheet(false);
  els.results.focus({ preventScroll: true });
  scrollToResults();
}

function scrollToResults() {  // to just under the sticky header, which would otherwise cover the heading
  const header = document.querySelector(".topbar").getBoundingClientRect().height;
  window.scrollTo({ top: Math.max(0, els.results.getBoundingClientRect().top + window.scrollY - header - 8) });
}

function sheetOpen() {
  return PHONE.matches && els.facets.closest(".filters").classList.contains("open");
}

// --- sort --------------------------------------------------------------------------------------

function renderSorts(sorts) {  // from /api/facets: relevance, then each numeric column both ways
  if (!sorts || els.sort.dataset.filled) return;
  els.sort.dataset.filled = "yes";
  els.sort.replaceChildren(...sorts.map((value) => new Option(sortLabel(value), value)));
  els["sort-field"].hidden = sorts.length < 2;
  setSortChoice();
}

function sortLabel(value) {
  if (value === "relevance") return "Relevance";
  const column = value.replace(/^-/, "");
  return `${column[0].toUpperCase()}${column.slice(1)}: ${value.startsWith("-") ? "high to low" : "low to high"}`;
}

function setSortChoice() {
  const known = [...els.sort.options].some((option) => option.value === state.sort);
  els.sort.value = known ? state.sort : "relevance";
}
