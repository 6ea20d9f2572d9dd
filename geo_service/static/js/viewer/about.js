/* The indicator's metadata from the catalogue, in the page's language: definition, unit,
   kind, source, licence, last update, how derived periods were made, and how the map is
   classified. */
import { h, fill } from "../dom.js";
import { paletteName } from "./controls.js";

export function renderAbout(app, root) {
  const { t, pick } = app.i18n;
  const s = app.series();
  if (!s) { fill(root, h("p", { class: "gv-hint" }, t("loading"))); return; }
  const row = (label, value) => value ? [h("dt", {}, label), h("dd", {}, value)] : null;
  const derivation = s.derivation ? t("derived_" + (s.derivation.method || "other").replace(/[^a-z]/g, "_"), {
    from: s.derivation.from_vintage || "", periods: (s.derivation.periods || []).join(", "),
    missing: app.i18n.number(s.derivation.parts_not_available || 0, 0) }) : null;
  const d = s.derivation || {};
  // a carry-over through a crosswalk with a record: its weights, how it was made, its quality
  const quality = d.crosswalk_method ? t("derived_weights", {
    weight: t("weight_" + (d.weight === "population" ? "population" : "area")),
    method: t("xw_" + (d.crosswalk_method === "computed" ? "computed" : "loaded")),
    // (the date it was built, when the record has one: the demo's shipped record has none)
    built: d.crosswalk_built_at ? " (" + String(d.crosswalk_built_at).slice(0, 10) + ")" : "",
    covered: d.covered_median === null || d.covered_median === undefined ? "–" : app.i18n.fixed(100 * d.covered_median, 1),
    below: d.covered_below_95 === undefined ? "–" : app.i18n.number(d.covered_below_95, 0) }) : null;
  const classes = app.classes;
  fill(root,
    h("h2", {}, pick(s.name)),
    h("dl", { class: "gv-meta" },
      row(t("meta_definition"), pick(s.description)),
      row(t("meta_unit"), pick(s.unit)),
      row(t("meta_kind"), t("kind_" + s.kind)),
      row(t("meta_periods"), s.periods.join(", ")),
      row(t("meta_source"), pick(s.source)),
      row(t("meta_licence"), pick(s.licence)),
      row(t("meta_updated"), s.updated ? app.i18n.date(s.updated) : null),
      row(t("meta_derivation"), derivation),
      row("", quality),
      row(t("meta_classes"), classes ? pick(classes.method_name) + " · " + t("meta_k", { k: classes.k }) + " · " + paletteName(t, classes.palette) : null),
      row(t("meta_disclosure"), t("meta_disclosure_text"))),
    h("p", { class: "gv-hint" }, t("meta_api"), " ",
      h("a", { href: app.api.url("/indicators/" + s.code), target: "_blank", rel: "noopener" }, "/indicators/" + s.code)));
}
