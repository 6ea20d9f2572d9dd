/* Search across levels: accent- and case-insensitive, abbreviations (HCM, HN…), each hit
   with its type and parent ("Tân Phú — Đồng Nai"); choosing one highlights, labels and
   frames its main part beside the panel. Keyboard: ↑/↓ and Enter. */
import { h, fill } from "../dom.js";

export function createSearch(app, onList) {
  const { t } = app.i18n;
  const input = h("input", { type: "search", name: "q", autocomplete: "off", placeholder: t("search"),
    "aria-label": t("search"), role: "combobox", "aria-expanded": "false", "aria-controls": "gv-hits" });
  const list = h("ul", { class: "gv-hits", id: "gv-hits", role: "listbox", "aria-label": t("search_results") });
  const button = h("button", { type: "submit", class: "gv-search" }, t("search_button"));
  let hits = [];
  let active = -1;
  let timer = null;

  /* Close the list: nothing listed, the combobox says so. */
  function close() {
    fill(list);
    hits = [];
    active = -1;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    if (onList) onList(false);
  }

  async function run(text, chooseFirst) {
    if (!text.trim()) { close(); return; }
    let body;
    try {
      body = await app.api.latest("search", "/search", { q: text, vintage: app.state.vintage, limit: 8 });
    } catch (err) {
      if (err.name === "AbortError") return;
      fill(list, h("li", { class: "gv-nohit" }, err.message));
      if (onList) onList(true);
      return;
    }
    hits = body.hits;
    active = hits.length ? 0 : -1;
    render();
    if (chooseFirst && hits.length) choose(hits[0]);
  }

  function label(hit) {
    const type = hit.unit_type && !namedWithType(hit.name, hit.unit_type) ? hit.unit_type + " " : "";
    return [h("span", { class: "gv-hit-name" }, type + hit.name),
      hit.parent_name ? h("span", { class: "gv-hit-parent" }, " — " + hit.parent_name) : null,
      h("span", { class: "gv-hit-level" }, app.cat.levelName(hit.level))];
  }

  function render() {
    input.setAttribute("aria-expanded", String(hits.length > 0));
    if (onList) onList(true);
    if (!hits.length) { fill(list, h("li", { class: "gv-nohit" }, t("no_match"))); return; }
    fill(list, hits.map((hit, i) => h("li", { role: "option", id: "gv-hit-" + i, class: "gv-hit" + (i === active ? " gv-active" : ""),
      "aria-selected": String(i === active), onmousedown: (e) => { e.preventDefault(); choose(hit); } }, label(hit))));
    input.setAttribute("aria-activedescendant", active >= 0 ? "gv-hit-" + active : "");
  }

  async function choose(hit) {
    close();
    window.geoViewer.lastZoomed = hit.code;
    await app.select(hit.code, { level: hit.level, fit: true, bbox: hit.bbox });
  }

  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => run(input.value, false), 250); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && hits.length) { e.preventDefault(); active = (active + 1) % hits.length; render(); }
    else if (e.key === "ArrowUp" && hits.length) { e.preventDefault(); active = (active + hits.length - 1) % hits.length; render(); }
    else if (e.key === "Escape" && (hits.length || list.childElementCount)) { e.preventDefault(); close(); }
  });
  const form = h("form", { class: "gv-searchbox", role: "search", onsubmit: (e) => {
    e.preventDefault();
    clearTimeout(timer);
    if (hits.length && active >= 0 && document.activeElement === input && list.childElementCount && hits[active]) choose(hits[active]);
    else run(input.value, true);
  } }, input, button);
  return { element: h("div", { class: "gv-search-wrap" }, form, list), run, input };
}

/* A name that already says its type ("TP. Hồ Chí Minh", "Thành phố Huế", "Quận 1") is shown
   as it is, not as "Thành phố TP. Hồ Chí Minh". */
export function namedWithType(name, type) {
  const lower = name.toLocaleLowerCase("vi");
  const initials = type.split(/\s+/).map((w) => w[0]).join("").toLocaleLowerCase("vi");
  return lower.startsWith(type.toLocaleLowerCase("vi") + " ") || (initials.length > 1 && lower.startsWith(initials + "."));
}
