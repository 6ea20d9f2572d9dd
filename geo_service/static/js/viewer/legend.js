/* The legend: what is mapped and how (unit, period or change, method, scope), each class
   with its range and count (standard deviations as σ bands around the mean), the units
   without a value by reason, notes, and the source. */
import { h, fill } from "../dom.js";
import { NO_VALUE_SWATCH } from "./layers.js";

export function createLegend(app) {
  const { t, signed, limitDecimals, limit, pick, number } = app.i18n;
  const control = L.control({ position: "bottomright" });
  let body = null;
  // (folded to its title by the reader, or when the phone's sheet opens: the legend would
  // cover a good part of what is left of the map; one tap on its title opens it again)
  let folded = false;
  // (the reader's own fold or unfold, once they tapped its title: the sheet opening or
  // closing no longer overrides it)
  let chosen = null;
  control.onAdd = () => {
    body = L.DomUtil.create("div", "gv-legend");
    L.DomEvent.disableClickPropagation(body);
    L.DomEvent.disableScrollPropagation(body);
    return body;
  };
  control.addTo(app.map);

  function sigma(value, c) {
    const m = (value - c.mean) / (c.sd || 1);
    const rounded = Math.round(m * 2) / 2;
    return rounded === 0 ? t("legend_mean") : (rounded > 0 ? "+" : "−") + number(Math.abs(rounded), 1) + "σ";
  }

  function render() {
    const c = app.classes;
    const s = app.series();
    if (!c || !s || !body) return;
    const st = app.state;
    const decimals = app.values ? app.values.decimals : s.decimals;
    // (limits with enough decimals to tell them apart, the same for all)
    const digits = limitDecimals(c.classes.flatMap((k) => [k.lower, k.upper]), decimals);
    const fmt = (v) => (st.compare ? signed(v, decimals, true) : limit(v, digits));
    const rows = c.classes.map((k) => h("div", { class: "gv-row", dataset: { upper: k.upper } },
      h("i", { class: "gv-swatch", style: { background: k.colour } }),
      h("span", { class: "gv-range" }, fmt(k.lower) + " – " + fmt(k.upper)),
      c.method === "std_mean" ? h("span", { class: "gv-sigma" }, " (" + sigma(k.lower, c) + " … " + sigma(k.upper, c) + ")") : null,
      h("span", { class: "gv-count" }, " (" + number(k.count, 0) + ")")));
    // (while values are re-checked for disclosure they are counted apart, never as suppressed)
    // A legend keys what the map shows: a reason with no unit is left out (as the ONS census
    // maps and jSTAT MAP do); the disclosure rule itself is told in the "Thông tin" tab.
    const statuses = (c.rechecking ? ["rechecking", "suppressed", "not_available"] : ["suppressed", "not_available"])
      .filter((status) => status === "rechecking" || (c.no_value[status] || 0) > 0);
    const none = statuses.map((status) => h("div", { class: "gv-row gv-" + status },
      h("i", { class: "gv-swatch " + NO_VALUE_SWATCH[status] }), t("status_" + status) + " (" + number(c.no_value[status] || 0, 0) + ")"));
    // (sums with parts missing keep their colour, and are counted here: never a silent total)
    const partial = c.incomplete ? h("div", { class: "gv-row gv-incomplete" }, t("legend_incomplete", {
      units: number(c.incomplete.units, 0), parts: number(c.incomplete.parts, 0),
      level: app.cat.levelName(c.incomplete.parts_level).toLowerCase(), vintage: c.incomplete.parts_vintage })) : null;
    const provinces = app.tables["province-" + st.vintage];
    const withinName = provinces && st.within ? provinces.names[provinces.codes.indexOf(st.within)] : st.within;
    const scope = st.scope === "province" ? t("legend_scope_province", { name: withinName || "" })
      : st.scope === "view" ? t("legend_scope_view") : null;
    const period = st.compare ? (st.cv ? st.compare + " (" + t("vintage_short", { v: st.cv }) + ")" : st.compare) + " → " + st.period : st.period;
    const fold = h("button", { type: "button", class: "gv-legend-fold", "aria-expanded": String(!folded),
      "aria-label": t(folded ? "legend_unfold" : "legend_fold"), title: t(folded ? "legend_unfold" : "legend_fold"),
      onclick: () => { folded = !folded; chosen = folded; render(); } }, folded ? "▸" : "▾");
    body.classList.toggle("gv-folded", folded);
    fill(body,
      h("div", { class: "gv-title" }, fold, (st.compare ? t("legend_change") + ": " : "") + pick(s.name)),
      h("div", { class: "gv-sub" }, [app.values ? app.values.unit : pick(s.unit), period, pick(c.method_name)].filter(Boolean).join(" · ")),
      c.method === "std_mean" && c.mean !== undefined ? h("div", { class: "gv-sub" }, t("legend_sigma", { mean: limit(c.mean, digits), sd: limit(c.sd, digits) })) : null,
      c.rechecking ? h("div", { class: "gv-rechecking-note", role: "status" }, t("rechecking_note")) : null,
      scope ? h("div", { class: "gv-scope" }, scope) : null,
      h("div", { class: "gv-rows" }, rows, none, partial),
      c.warning ? h("div", { class: "gv-warning" }, c.warning) : null,
      // σ classes of skewed values: said, with the fitting method one click away
      c.advice ? h("div", { class: "gv-advice", role: "note" }, c.advice.text, " ",
        h("button", { type: "button", class: "gv-link gv-advice-apply", onclick: () => app.set({ method: c.advice.method, palette: null }) },
          t("legend_use_method", { method: t("method_" + c.advice.method).toLocaleLowerCase(app.i18n.locale) }))) : null,
      c.note && !c.rechecking ? h("div", { class: "gv-note" }, c.note) : null,
      // the catalogue's source, licence and last update (the data's provenance for a reader)
      h("div", { class: "gv-source" }, [t("legend_source") + ": " + pick(s.source), pick(s.licence),
        s.updated ? t("legend_updated", { date: app.i18n.date(s.updated) }) : null].filter(Boolean).join(" · ")));
  }

  // (a province scope is named once the province table is in, which may come after the data)
  app.on((what) => { if (what === "data" || what === "units") render(); });
  /* Fold (true) or open (false) the legend as the layout asks (the phone's sheet), unless
     the reader chose otherwise with its title's button. */
  function fold(flag) {
    const wanted = chosen === null ? flag : chosen;
    if (folded === wanted) return;
    folded = wanted;
    render();
  }

  return { render, fold };
}
