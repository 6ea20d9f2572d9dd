/* The viewer's panel: search, notices, and tabs for the map's settings, the selected unit,
   the ranking table, drawn areas and the indicator's metadata. Beside the map on a wide
   screen, a sheet over its lower part on a phone (collapsed to a bar until opened). */
import { h, fill } from "../dom.js";
import { createSearch } from "./search.js";
import { renderControls } from "./controls.js";
import { createUnitTab } from "./unit.js";
import { createTableTab } from "./table.js";
import { createAreaTab } from "./area.js";
import { renderAbout } from "./about.js";

const TABS = ["map", "unit", "table", "area", "about"];
const WIDE = 760; // px: the panel sits beside the map from this width up
const PANEL_WIDTH = 360;

export function createPanel(app) {
  const { t, number, pick } = app.i18n;
  const map = app.map;
  const container = map.getContainer();
  const notices = h("div", { class: "gv-notices", role: "status", "aria-live": "polite" });
  const sections = {};
  const tabButtons = {};
  let open = window.innerWidth >= WIDE;

  const toggle = h("button", { type: "button", class: "gv-toggle", "aria-expanded": String(open),
    onclick: () => setOpen(!open) });
  const langLinks = h("nav", { class: "gv-lang", "aria-label": t("language") });
  const tablist = h("div", { class: "gv-tabs", role: "tablist" });
  for (const tab of TABS) {
    sections[tab] = h("section", { class: "gv-tab gv-tab-" + tab, role: "tabpanel", id: "gv-tab-" + tab,
      "aria-labelledby": "gv-tabbtn-" + tab });
    tabButtons[tab] = h("button", { type: "button", role: "tab", id: "gv-tabbtn-" + tab, class: "gv-tabbtn",
      "aria-controls": "gv-tab-" + tab, dataset: { tab }, onclick: () => showTab(tab, true),
      onkeydown: (e) => tabKeys(e, tab) }, t("tab_" + tab));
    tablist.appendChild(tabButtons[tab]);
  }
  // on a phone the folded sheet grows while search results are listed (else they are cut off)
  const search = createSearch(app, (listed) => {
    panel.classList.toggle("gv-searching", listed);
    if (!panel.classList.contains("gv-wide")) layout();
  });
  // the header, search and tabs stay in place; only the tab's content scrolls
  const body = h("div", { class: "gv-body" }, notices, Object.values(sections));
  // search comes first in the page (the first Tab stop, before the map's controls); the
  // header is still drawn above it
  const panel = h("aside", { class: "gv-panel", "aria-label": t("panel") },
    search.element, h("header", { class: "gv-head" }, h("h1", {}, t("title")), langLinks, toggle),
    tablist, body);
  document.body.insertBefore(panel, document.body.firstChild);
  const tooltip = L.tooltip({ sticky: true, direction: "top", className: "gv-tip", offset: [0, -6] });

  const unitTab = createUnitTab(app, sections.unit);
  const tableTab = createTableTab(app, sections.table);
  const areaTab = createAreaTab(app, sections.area);

  function tabKeys(e, tab) {
    const i = TABS.indexOf(tab);
    const next = e.key === "ArrowRight" ? TABS[(i + 1) % TABS.length] : e.key === "ArrowLeft" ? TABS[(i + TABS.length - 1) % TABS.length] : null;
    if (next) { e.preventDefault(); showTab(next, true); tabButtons[next].focus(); }
  }

  function showTab(tab, user) {
    for (const name of TABS) {
      const on = name === tab;
      sections[name].hidden = !on;
      tabButtons[name].setAttribute("aria-selected", String(on));
      tabButtons[name].tabIndex = on ? 0 : -1;
    }
    if (app.state && app.state.tab !== tab) {
      app.state = { ...app.state, tab };
      if (user) app.writeUrl(true);
    }
    if (user && !open) setOpen(true);
    renderTab(tab);
  }

  function renderTab(tab) {
    if (!app.state) return;
    if (tab === "map") renderControls(app, sections.map);
    else if (tab === "unit") unitTab.render();
    else if (tab === "table") tableTab.render();
    else if (tab === "area") areaTab.render();
    else if (tab === "about") renderAbout(app, sections.about);
  }

  function layout() {
    const wide = window.innerWidth >= WIDE;
    panel.classList.toggle("gv-wide", wide);
    panel.classList.toggle("gv-sheet", !wide);
    panel.classList.toggle("gv-open", open);
    // on a phone with the panel open the legend folds to its title above the sheet (it
    // would cover what is left of the map) and stays there for a tap to open it
    const wasOpen = document.body.classList.contains("gv-sheet-open");
    document.body.classList.toggle("gv-sheet-open", !wide && open);
    if (app.legend && wasOpen !== (!wide && open)) app.legend.fold(!wide && open);
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? (wide ? "‹" : "▾") : (wide ? "›" : "▴");
    toggle.setAttribute("aria-label", open ? t("panel_close") : t("panel_open"));
    // on a wide screen the map starts where the panel ends, so fitting a unit frames it in
    // the visible part
    container.style.position = "absolute";
    container.style.top = "0";
    container.style.bottom = "0";
    container.style.height = "auto";
    container.style.right = "0";
    container.style.width = "auto";
    container.style.left = wide && open ? PANEL_WIDTH + "px" : "0";
    map.invalidateSize();
    // on a phone the legend and zoom controls stay above the sheet
    const lift = wide ? "" : Math.round(panel.getBoundingClientRect().height + 6) + "px";
    for (const corner of container.querySelectorAll(".leaflet-bottom")) corner.style.bottom = lift;
    // an opened legend scrolls within the map left above the sheet (the zoom buttons above)
    const legend = container.querySelector(".gv-legend");
    if (legend) legend.style.maxHeight = wide ? "" : Math.max(48, Math.round(panel.getBoundingClientRect().top) - 96) + "px";
    // and the scale bar goes under the zoom buttons: at the bottom the attribution, as wide
    // as a phone, would cover it
    const scale = container.querySelector(".leaflet-control-scale");
    const corner = container.querySelector(wide ? ".leaflet-bottom.leaflet-left" : ".leaflet-top.leaflet-left");
    if (scale && corner && scale.parentElement !== corner) corner.appendChild(scale);
  }

  function setOpen(flag) {
    open = flag;
    layout();
  }

  function renderNotices() {
    fill(notices, app.notices.map((text) => h("p", { class: "gv-notice" }, text,
      h("button", { type: "button", class: "gv-dismiss", "aria-label": t("dismiss"),
        onclick: () => { app.notices = app.notices.filter((x) => x !== text); renderNotices(); } }, "×"))));
  }

  function renderLang() {
    const other = app.cfg.lang === "vi" ? "en" : "vi";
    const link = (lang, label) => {
      const a = h("a", { href: "#", lang, hreflang: lang, class: lang === app.cfg.lang ? "gv-current" : null }, label);
      // the other language keeps every choice, the view and the selection
      a.addEventListener("click", (e) => {
        e.preventDefault();
        const params = new URLSearchParams(window.location.search);
        params.set("lang", lang);
        window.location.search = params.toString();
      });
      return a;
    };
    fill(langLinks, link("vi", "Tiếng Việt"), " · ", link("en", "English"));
    langLinks.querySelector("[lang=" + other + "]").setAttribute("aria-current", "false");
  }

  /* The hover card: the unit's name, type and parent, its value or why it has none. */
  function card(props) {
    const table = app.tables[app.collection()];
    const i = table ? table.codes.indexOf(props.code) : -1;
    const type = i >= 0 ? table.types[i] : null;
    const parent = i >= 0 ? table.parentNames[table.parents[i]] : null;
    const entry = app.lookup.get(props.code) || [null, "not_available"];
    const [value, status] = entry;
    const unit = app.values ? app.values.unit : "";
    const shown = value === null || (status !== "ok" && status !== "provisional")
      ? t("status_" + status)
      : (app.state.compare ? app.i18n.signed(value, app.values.decimals) : app.i18n.fixed(value, app.values.decimals)) + " " + unit;
    return h("div", { class: "gv-card" },
      h("strong", {}, props.name || props.code),
      h("div", { class: "gv-card-sub" }, [type, parent].filter(Boolean).join(" · ") || props.code),
      h("div", { class: "gv-card-value" }, shown, status === "provisional" ? " (" + t("status_provisional") + ")" : ""));
  }

  app.on((what) => {
    if (what === "state" || what === "data") { renderNotices(); renderTab(app.state.tab); if (!panel.classList.contains("gv-wide")) layout(); }
    if (what === "state" && app.state.tab !== currentTab()) showTab(app.state.tab, false);
    if (what === "selection") {
      if (app.selected && !app.keepTab && app.state.tab !== "unit" && app.state.tab !== "table") showTab("unit", true);
      else renderTab(app.state.tab);
    }
    if ((what === "view" || what === "units") && app.state.tab === "table") renderTab("table");
  });

  function currentTab() { return TABS.find((tab) => !sections[tab].hidden); }

  window.addEventListener("resize", () => layout());
  renderLang();
  layout();
  showTab("map", false);

  return {
    hover(props, latlng) { tooltip.setLatLng(latlng).setContent(card(props)); if (!map.hasLayer(tooltip)) tooltip.addTo(map); },
    leave() { map.closeTooltip(tooltip); },
    /* How much of the map the panel covers (px), to frame things beside it. */
    covered() {
      const wide = window.innerWidth >= WIDE;
      // an opening sheet grows to its max-height (62vh) as its chart and tables arrive
      return { left: 0, bottom: !wide && open ? Math.max(panel.offsetHeight, window.innerHeight * 0.62) : 0 };
    },
    showTab,
    isOpen: () => open,
    setOpen,
    element: panel,
  };
}
