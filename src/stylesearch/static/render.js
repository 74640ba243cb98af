// How results look: the status line, cards, the mode chip, colour swatches, and "no good match".
"use strict";

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

const KNOWN_ATTRIBUTES = new Set(["gender", "masterCategory", "subCategory", "articleType", "baseColour",
                                  "season", "year", "usage"]);

function render(body, fresh) {
  els.welcome.hidden = true;
  if (fresh) els.grid.replaceChildren();
  const fromLoadMore = document.activeElement === els["load-more"];
  const before = els.grid.children.length;
  const cards = document.createDocumentFragment();
  for (const hit of body.hits) cards.append(card(hit));
  els.grid.append(cards);
  renderMode();
  const shown = els.grid.children.length;
  // CLIP ranks every product for any words; a query that matched nothing better than chance says so.
  const noMatch = fresh && body.match === false;
  els["no-match"].hidden = !noMatch;
  els.grid.hidden = noMatch;
  if (noMatch) renderNoMatch(body);
  const what = state.mode === "text" ? `for “${state.q}”`
    : state.mode === "browse" ? "with these filters"
    : state.mode === "image" ? "that look like your photo"
    : `like “${state.product.title}”${state.product.edit ? `, ${state.product.edit}` : ""}`;
  els["results-title"].textContent = state.mode === "text" ? `Results for “${state.q}”`
    : state.mode === "browse" ? "Browsing the catalogue"
    : state.mode === "image" ? "Similar to your photo" : "More like this";
  els.status.replaceChildren();
  if (noMatch) {
    els.status.append(`No good match ${what} `);
  } else if (!shown) {
    els.status.append(`No products ${what} match these filters. `);
  } else {
    const noun = state.mode === "browse" ? "products" : "results";
    els.status.append(`${body.total.toLocaleString()} ${body.total === 1 ? noun.slice(0, -1) : noun} ${what}`
      + (shown < body.total ? ` · showing ${shown.toLocaleString()} ` : " "));
  }
  const took = document.createElement("span");
  took.className = "took";
  took.dataset.testid = "took";
  took.textContent = formatMs(body.took_ms);
  els.status.append(took);
  els.notice.hidden = !body.notice;
  els.notice.textContent = body.notice || "";
  els["load-more"].hidden = !body.has_more || noMatch;
  els["load-more"].textContent = `Load more (${Math.min(PAGE_SIZE, body.total - shown)} of ${(body.total - shown).toLocaleString()} left)`;
  if (fromLoadMore && els["load-more"].hidden) {  // the button went away: the keyboard goes on to what it loaded
    const next = els.grid.children[before];
    if (next) next.querySelector("a").focus();
  }
  renderShowResults();
  if (fresh) afterPaint(() => {
    if (performance.getEntriesByName("search-start", "mark").length) {  // Enter -> these results on screen
      performance.measure("search-to-paint", "search-start");
      performance.clearMarks("search-start");
    }
    // On a phone the results sit under the header and filters: bring them up, unless the sheet covers them.
    const top = els.results.getBoundingClientRect().top;
    if (PHONE.matches && !sheetOpen() && (top < 0 || top > window.innerHeight / 3)) scrollToResults();
  });
}

function afterPaint(then) {
  requestAnimationFrame(() => setTimeout(then, 0));  // runs once the frame holding the new DOM has been drawn
}

function renderNoMatch(body) {
  els["no-match-title"].textContent = `Nothing in the catalogue matches “${state.q}”`;
  const items = document.createDocumentFragment();
  for (const text of body.suggestions || []) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "suggestion";
    button.dataset.testid = "no-match-suggestion";
    button.textContent = text;
    button.addEventListener("click", () => { els.q.value = text; startText(text); });
    item.append(button);
    items.append(item);
  }
  els["no-match-list"].replaceChildren(items);
}

// Catalogue photos can be small (the shared set's are 60x80): a card that stretches one to its full width
// shows a blur. Show a photo at most this many times its own size, centred; large photos fill as before.
const MAX_UPSCALE = 2;

function capToNatural(img, factor = MAX_UPSCALE) {
  const cap = () => {
    if (!img.naturalWidth) return;
    img.style.maxWidth = `${img.naturalWidth * factor}px`;
    img.style.maxHeight = `${img.naturalHeight * factor}px`;
  };
  img.style.maxWidth = img.style.maxHeight = "";
  if (img.complete && img.naturalWidth) cap(); else img.addEventListener("load", cap, { once: true });
}

function card(hit) {
  const node = els["card-template"].content.firstElementChild.cloneNode(true);
  const attrs = hit.attributes || {};
  const img = node.querySelector("img");
  img.src = hit.image_url;
  img.alt = hit.title;
  capToNatural(img);
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
  // A score only reads right on a ranking by that score: catalogue order has none, and a fused (hybrid)
  // or sorted ranking would print CLIP scores out of order.
  score.hidden = state.mode === "browse" || (state.mode === "text" && state.hybrid) || state.sort !== "relevance";
  score.textContent = hit.score.toFixed(1);
  score.title = `CLIP score ${hit.score.toFixed(2)} (100 × cosine similarity), rank ${hit.rank}`;
  const more = node.querySelector(".more-like-this");
  more.setAttribute("aria-label", `More like this: ${hit.title}`);  // the visible words first (WCAG 2.5.3)
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
    if (state.mode === "image" && state.file) {
      thumb.src = thumb.dataset.blob = URL.createObjectURL(state.file);
      els["mode-text"].textContent = state.file.name || "your photo";
    } else if (state.mode === "image") {  // opened from a URL: the server's thumbnail of the kept photo
      thumb.src = `/api/uploads/${encodeURIComponent(state.upload)}/thumbnail`;
      els["mode-text"].textContent = "your photo";
    } else {
      thumb.src = state.product.image;
      els["mode-text"].textContent = state.product.title;
    }
    thumb.hidden = false;
  } else {
    chip.hidden = true;
  }
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
