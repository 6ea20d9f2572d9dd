/* The map tab: what is mapped (boundary year, level, indicator, period, a change since an
   earlier period), how it is classified (method, classes, palette, manual breaks, scope),
   the layers and the downloads. Each change re-colours the map in place. */
import { h, fill } from "../dom.js";

let uid = 0;

function field(label, control, hint) {
  const id = control.id || (control.id = "gv-f" + (++uid));
  return h("div", { class: "gv-field" }, h("label", { for: id }, label), control, hint || null);
}

function select(name, options, chosen, onchange, attrs) {
  return h("select", { name, ...(attrs || {}), onchange: (e) => onchange(e.target.value) },
    options.map(([value, text]) => h("option", { value, selected: String(value) === String(chosen) }, text)));
}

/* The ColorBrewer palettes by name in the page's language (their codes mean nothing to a
   planner), grouped: a change map or standard deviations take only diverging ones. */
function paletteSelect(app, chosen, divergingOnly, onchange) {
  const { t } = app.i18n;
  const group = (kind) => h("optgroup", { label: t("palette_" + kind) }, app.cfg.palettes[kind].map((code) =>
    h("option", { value: code, selected: code === chosen }, paletteName(t, code))));
  return h("select", { name: "palette", onchange: (e) => onchange(e.target.value) },
    divergingOnly ? [group("diverging")] : [group("sequential"), group("diverging")]);
}

export function paletteName(t, code) {
  const name = t("palette_" + code);
  return name === "palette_" + code ? code : name;
}

export function renderControls(app, root) {
  const { t, pick } = app.i18n;
  const st = app.state;
  const cat = app.cat;
  const focused = document.activeElement && root.contains(document.activeElement) ? document.activeElement.name : null;
  // limits being typed survive a re-render (an answer arriving meanwhile)
  const typing = focused === "breaks" ? root.querySelector("input[name=breaks]").value : null;
  const set = (changes) => app.set(changes);
  const series = app.series();

  const vintages = cat.vintages().map((v) => [v, v]);
  const levels = cat.levels(st.vintage).map((l) => [l, cat.levelName(l)]);
  const indicators = cat.seriesOf(st.vintage, st.level).map((s) => [s.code, pick(s.name)]);
  const periods = series ? series.periods.map((p) => [p, p]) : [];

  // a change since an earlier period (of this boundary year, or an older one carried over)
  const comparisons = series ? cat.comparisons(series).filter((c) => c.vintage !== st.vintage || c.period < st.period) : [];
  const compareValue = st.compare ? (st.cv || st.vintage) + ":" + st.compare : "";
  const compareOptions = [["", t("compare_none")], ...comparisons.map((c) => [c.vintage + ":" + c.period,
    c.vintage === st.vintage ? c.period : t("compare_carried", { period: c.period, vintage: c.vintage })])];
  const compareSelect = select("compare", compareOptions, compareValue, (v) => {
    if (!v) return set({ compare: null, cv: null });
    const [cv, period] = v.split(":");
    set({ compare: period, cv: cv === st.vintage ? null : cv, palette: null });
  }, { disabled: comparisons.length === 0 });

  const what = h("fieldset", { class: "gv-group" }, h("legend", {}, t("group_what")),
    h("div", { class: "gv-row2" },
      field(t("vintage"), select("vintage", vintages, st.vintage, (v) => set({ vintage: v, period: null, compare: null, cv: null, within: null, scope: st.scope === "province" ? "all" : st.scope, unit: null }))),
      field(t("level"), select("level", levels, st.level, (v) => set({ level: v, compare: null, cv: null, unit: null })))),
    field(t("indicator"), select("indicator", indicators, st.indicator, (v) => set({ indicator: v, period: null, compare: null, cv: null }))),
    h("div", { class: "gv-row2" },
      field(t("period"), select("period", periods, st.period, (v) => set({ period: v }))),
      field(t("compare"), compareSelect, comparisons.length ? null : h("small", { class: "gv-hint" }, t("compare_unavailable")))),
    st.compare ? field(t("change"), select("change", [["absolute", t("change_absolute")], ["percent", t("change_percent")]], st.change, (v) => set({ change: v }))) : null);

  // classification: manual breaks in one step (choose "manual", type, Enter or Apply)
  const methods = app.cfg.methods.map((m) => [m, t("method_" + m)]);
  const paletteChosen = st.palette || (app.classes && app.classes.palette) || "";
  const breaksInput = h("input", { name: "breaks", type: "text", inputmode: "decimal", autocomplete: "off",
    value: st.breaks || (app.classes && app.classes.breaks ? app.classes.breaks.slice(0, -1).map((b) => Number(b.toPrecision(4))).join(", ") : ""),
    placeholder: "100, 500, 1000", "aria-describedby": "gv-breaks-help",
    "aria-invalid": app.problem && app.problem.parameter === "breaks" ? "true" : null,
    onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); applyBreaks(); } } });
  const applyBreaks = () => set({ method: "manual", breaks: breaksInput.value.replace(/\s+/g, "") });
  const manual = st.method === "manual" || (app.problem && app.problem.parameter === "breaks");
  const how = h("fieldset", { class: "gv-group" }, h("legend", {}, t("group_how")),
    st.compare ? h("p", { class: "gv-hint" }, t("change_classes")) : null,
    field(t("method"), select("method", methods, st.method, (v) => set(v === "manual" ? { method: "manual", breaks: st.breaks || breaksInput.value.replace(/\s+/g, "") } : { method: v, palette: v === "std_mean" || st.method === "std_mean" ? null : st.palette }))),
    h("div", { class: "gv-row2" },
      field(t("k"), select("k", [3, 4, 5, 6, 7].map((n) => [n, String(n)]), st.k, (v) => set({ k: Number(v) }), { disabled: manual })),
      field(t("palette"), paletteSelect(app, paletteChosen, st.compare || st.method === "std_mean", (v) => set({ palette: v })))),
    manual || !st.compare ? h("div", { class: "gv-field gv-breaks" + (manual ? "" : " gv-collapsed") },
      h("label", { for: "gv-breaks" }, t("breaks")),
      h("div", { class: "gv-inline" }, Object.assign(breaksInput, { id: "gv-breaks" }),
        h("button", { type: "button", class: "gv-apply", onclick: applyBreaks }, t("apply"))),
      h("small", { id: "gv-breaks-help", class: "gv-hint" }, t("breaks_help")),
      app.problem && app.problem.parameter === "breaks" ? h("p", { class: "gv-problem", role: "alert" }, app.problem.message) : null) : null);

  // where the classes are computed: the whole country, one province, the current view
  const provinces = app.tables["province-" + st.vintage];
  const provinceOptions = provinces ? provinces.codes.map((c, i) => [c, provinces.names[i]]) : [];
  const scopeRadio = (value, label) => h("label", { class: "gv-radio" },
    h("input", { type: "radio", name: "scope", value, checked: st.scope === value, disabled: value === "province" && st.level === "province",
      onchange: () => set(value === "province" ? { scope: "province", within: st.within || (app.selected && app.selected.level === "province" ? app.selected.code : app.selected && app.selected.parent) || provinceOptions[0][0] } : { scope: value, within: null }) }), label);
  const where = h("fieldset", { class: "gv-group" }, h("legend", {}, t("scope")),
    scopeRadio("all", t("scope_all")), scopeRadio("province", t("scope_province")),
    st.scope === "province" ? field(t("province"), select("within", provinceOptions, st.within, (v) => set({ within: v }))) : null,
    scopeRadio("view", t("scope_view")),
    app.problem && app.problem.parameter === "within" ? h("p", { class: "gv-problem", role: "alert" }, app.problem.message) : null);
  if (!provinces) app.unitTable("province-" + st.vintage).then(() => renderControls(app, root)).catch(() => {});

  fill(root, what, how, where, app.base.controls(), downloads(app), exports(app));
  if (focused) {
    const again = root.querySelector("[name='" + focused + "']");
    if (again) {
      if (typing !== null) again.value = typing;
      again.focus();
    }
  }
}

function downloads(app) {
  const { t } = app.i18n;
  const link = (format, label) => h("a", { href: "#", class: "gv-download-" + format, onclick: (e) => {
    const b = app.map.getBounds();
    const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(",");
    e.currentTarget.href = app.api.url("/collections/" + app.collection() + "/items", { limit: 10000,
      indicator: app.state.indicator, period: app.state.period, bbox, f: format });
  } }, label);
  return h("fieldset", { class: "gv-group gv-downloads" }, h("legend", {}, t("download")),
    h("p", { class: "gv-hint" }, t("download_help")), link("csv", "CSV"), " · ", link("json", "GeoJSON"));
}

/* Export: the map as it is now (indicator, period, boundary year, level, classes, scope and
   this view) as a PDF or PNG page, drawn by the service (/maps/export). */
function exports(app) {
  const { t } = app.i18n;
  const layout = h("select", { name: "export-layout", class: "gv-export-layout" },
    ...[["a4", t("layout_a4")], ["a3", t("layout_a3")], ["slide", t("layout_slide")]].map(([v, label]) => h("option", { value: v }, label)));
  const orientation = h("select", { name: "export-orientation", class: "gv-export-orientation" },
    ...[["landscape", t("landscape")], ["portrait", t("portrait")]].map(([v, label]) => h("option", { value: v }, label)));
  const link = (format, label) => h("a", { href: "#", class: "gv-export-" + format, download: "", onclick: (e) => {
    const b = app.map.getBounds();
    const extent = [Math.max(b.getWest(), -180), Math.max(b.getSouth(), -90), Math.min(b.getEast(), 180),
      Math.min(b.getNorth(), 90)].map((v) => v.toFixed(5)).join(",");
    e.currentTarget.href = app.api.url("/maps/export", { ...(app.classParams || {}), extent,
      layout: layout.value, orientation: orientation.value, lang: app.i18n.lang, format });
  } }, label);
  return h("fieldset", { class: "gv-group gv-exports" }, h("legend", {}, t("export")),
    h("p", { class: "gv-hint" }, t("export_help")),
    h("label", { class: "gv-field" }, t("export_layout"), layout),
    h("label", { class: "gv-field" }, t("export_orientation"), orientation),
    h("p", {}, link("pdf", t("export_pdf")), " · ", link("png", t("export_png"))));
}
