// Suggestions while typing: the search box as an ARIA 1.2 combobox over a listbox of /api/suggest answers.
// Arrow keys move through the list (focus stays in the box: aria-activedescendant), Enter or a click
// searches for the chosen suggestion, Escape closes the list. Typing searches nothing until Enter.
"use strict";

const SUGGEST_DELAY_MS = 90;  // a pause between keystrokes, not a wait after each
const SUGGEST_LIMIT = 8;

document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("q");
  const list = document.getElementById("suggest-list");
  const form = document.getElementById("search-form");
  let timer = 0;
  let asked = 0;       // a newer keystroke makes older answers stale
  let active = -1;     // the option aria-activedescendant points at

  const options = () => [...list.querySelectorAll("[role=option]")];

  function close() {
    list.hidden = true;
    list.replaceChildren();
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function highlight(index) {
    const all = options();
    active = all.length ? (index + all.length) % all.length : -1;
    all.forEach((option, i) => option.setAttribute("aria-selected", String(i === active)));
    if (active < 0) { input.removeAttribute("aria-activedescendant"); return; }
    input.setAttribute("aria-activedescendant", all[active].id);
    all[active].scrollIntoView({ block: "nearest" });
  }

  function choose(text) {
    input.value = text;
    close();
    form.requestSubmit();
  }

  function show(typed, suggestions) {
    if (!suggestions.length || input.value.trim() !== typed || document.activeElement !== input) { close(); return; }
    const items = document.createDocumentFragment();
    suggestions.forEach((s, i) => {
      const option = document.createElement("li");
      option.id = `suggestion-${i}`;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", "false");
      option.dataset.testid = "suggestion";
      option.dataset.text = s.text;
      const text = document.createElement("span");
      text.className = "suggest-text";
      text.textContent = s.text;
      const kind = document.createElement("span");
      kind.className = "suggest-kind";
      kind.textContent = s.kind === "product" ? "" : `${s.kind} · ${s.count.toLocaleString()}`;
      option.append(text, kind);
      // mousedown, not click: the box must not lose focus (and close the list) before the choice lands
      option.addEventListener("mousedown", (event) => { event.preventDefault(); choose(s.text); });
      items.append(option);
    });
    list.replaceChildren(items);
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    active = -1;
  }

  async function ask(typed) {
    const ticket = ++asked;
    try {
      const response = await fetch(`/api/suggest?${new URLSearchParams({ q: typed, limit: SUGGEST_LIMIT })}`);
      if (!response.ok) { close(); return; }  // suggestions are a convenience: a failure just shows none
      const body = await response.json();
      if (ticket === asked) show(typed, body.suggestions);
    } catch { if (ticket === asked) close(); }
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    const typed = input.value.trim();
    if (!typed || typed.length > 100) { asked++; close(); return; }
    timer = setTimeout(() => ask(typed), SUGGEST_DELAY_MS);
  });
  input.addEventListener("keydown", (event) => {
    const open = !list.hidden;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!open) return;
      event.preventDefault();
      highlight(event.key === "ArrowDown" ? active + 1 : (active < 0 ? options().length - 1 : active - 1));
    } else if (event.key === "Enter" && open && active >= 0) {
      event.preventDefault();
      choose(options()[active].dataset.text);
    } else if (event.key === "Escape" && open) {
      event.preventDefault();
      event.stopPropagation();
      close();
    }
  });
  input.addEventListener("blur", () => { asked++; close(); });
  form.addEventListener("submit", () => { clearTimeout(timer); asked++; close(); });
});
