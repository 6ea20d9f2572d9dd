/* The selected unit: its value now, its values over time in a chart beside its parent's and
   the country's (the numbers also as a table), and how it ranks. */
import { h, fill } from "../dom.js";
import { lineChart, barChart, chartKey, chartTable } from "./chart.js";
import { reportButtons } from "./report.js";

export function createUnitTab(app, root) {
  const { t, number, pick } = app.i18n;
  let shown = null; // the key of what is drawn
  let profile = null;

  async function render() {
    const sel = app.selected;
    if (!sel) { fill(root, h("p", { class: "gv-hint" }, t("unit_none"))); shown = null; return; }
    const series = app.series();
    const key = [sel.code, sel.level, app.state.vintage, app.state.indicator].join("|");
    if (key !== shown) {
      shown = key;
      fill(root, h("h2", { class: "gv-unit-name" }, sel.name), h("p", { class: "gv-hint" }, t("loading")));
      if (sel.level !== app.state.level) {
        profile = null;
      } else {
        try {
          profile = await app.api.get("/maps/profile", { collection: app.collection(), unit: sel.code, indicator: app.state.indicator });
        } catch (err) {
          fill(root, h("h2", { class: "gv-unit-name" }, sel.name), h("p", { class: "gv-problem" }, err.message));
          return;
        }
        if (key !== shown) return;
      }
      window.geoViewer.lastProfile = profile;
    }
    const head = [h("h2", { class: "gv-unit-name" }, sel.name),
      h("p", { class: "gv-unit-sub" }, [sel.type, sel.parentName, sel.code].filter(Boolean).join(" · ")),
      h("button", { type: "button", class: "gv-link gv-unselect", onclick: () => app.select(null) }, t("unselect")),
      lowerLevels(app, sel)];
    if (!profile || !series) {
      const scope = sel.level === "province" && app.state.level !== "province"
        ? h("button", { type: "button", class: "gv-apply", onclick: () => app.set({ scope: "province", within: sel.code }) }, t("classify_within", { name: sel.name }))
        : null;
      fill(root, head, h("p", { class: "gv-hint" }, t("unit_other_level", { level: app.cat.levelName(sel.level) })), scope);
      return;
    }
    const unit = pick(series.unit);
    const now = app.lookup.get(sel.code) || [null, "not_available"];
    const nowText = now[0] === null ? t("status_" + now[1])
      : (app.state.compare ? app.i18n.signed(now[0], app.values.decimals) : app.i18n.fixed(now[0], series.decimals)) + " " + app.values.unit;
    const lines = [{ key: "unit", name: profile.unit.name, series: profile.unit.series }];
    if (profile.parent) lines.push({ key: "parent", name: profile.parent.name, series: profile.parent.series });
    if (profile.national) lines.push({ key: "national", name: t("national_" + profile.national.method), series: profile.national.series });
    const title = pick(series.name) + " (" + unit + ")";
    // a count's parent and country are totals, thousands of times the unit's value: on one
    // axis they would flatten its line, so they are given in the table of numbers only
    const drawn = series.kind === "count" ? lines.slice(0, 1) : lines;
    // one period: bars of the unit, its parent and the country for that period (a count's
    // unit beside its share of the totals), rather than a lone point on a line chart
    const periods = new Set(lines.flatMap((l) => l.series.map((p) => p.period)));
    const single = periods.size === 1 || profile.unit.series.length < 2;
    const periodShown = app.state.period;
    const at = (line) => ({ ...line, series: line.series.filter((p) => p.period === periodShown) });
    const withinButton = profile.parent && app.state.level !== "province"
      && !(app.state.scope === "province" && app.state.within === profile.parent.code)
      ? h("button", { type: "button", class: "gv-apply", onclick: () => app.set({ scope: "province", within: profile.parent.code }) },
        t("classify_within", { name: profile.parent.name }))
      : null;
    const covered = await coveredLine(app, series, sel.code);
    const incomplete = incompleteLine(app, sel.code);
    // periods carried over from older boundaries are estimates, said so in the chart
    const d = series.derivation || {};
    const carried = d.method === "carry-over" ? (d.periods || []) : [];
    const carriedNote = carried.length && profile.unit.series.some((p) => carried.includes(p.period))
      ? h("p", { class: "gv-hint gv-carried" }, t("chart_carried", { periods: carried.join(", "), from: d.from_vintage || "",
        weight: t("weight_" + (d.weight === "population" ? "population" : "area")) }))
      : null;
    if (key !== shown) return;
    fill(root, head,
      h("div", { class: "gv-now" }, h("span", { class: "gv-now-label" }, pick(series.name) + " · " + (app.state.compare ? app.state.compare + " → " : "") + app.state.period),
        h("strong", { class: "gv-now-value" }, nowText)),
      incomplete,
      covered,
      h("h3", {}, single ? t("chart_one_title", { period: periodShown }) : t("chart_title")),
      single ? barChart(drawn.map(at), app.i18n, { title, decimals: series.decimals, unit })
        : lineChart(drawn, app.i18n, { title, decimals: series.decimals, unit, zero: series.kind === "count", carried }),
      single ? null : chartKey(drawn),
      single && drawn.length < lines.length ? shares(app, lines.map(at)) : null,
      carriedNote,
      single ? h("p", { class: "gv-hint" }, t("chart_one_period")) : null,
      !single && drawn.length < lines.length ? h("p", { class: "gv-hint" }, t("chart_totals_below")) : null,
      h("details", { class: "gv-numbers" }, h("summary", {}, t("chart_numbers")), chartTable(lines, app.i18n, series.decimals, carried)),
      withinButton,
      reportButtons(app, () => ({ unit: sel.code, vintage: app.state.vintage })));
  }

  return { render };
}

/* A count's unit as a share of its parent's and the country's totals for one period. */
function shares(app, lines) {
  const { t, fixed } = app.i18n;
  const unit = lines[0].series[0];
  if (!unit || unit.value === null) return null;
  const parts = lines.slice(1).map((line) => {
    const total = line.series[0];
    if (!total || total.value === null || !total.value) return null;
    const share = (100 * unit.value) / total.value;
    return t("chart_share", { share: fixed(share, share < 1 ? 2 : 1), name: line.name });
  }).filter(Boolean);
  return parts.length ? h("p", { class: "gv-shares" }, parts.join(" · ")) : null;
}

const qualities = new Map(); // crosswalk URL → its quality (or null), fetched once

/* "The 2009 boundaries cover 98.7 % of this unit": for a series carried over through a
   crosswalk with a quality record, when the map shows a carried period. */
async function coveredLine(app, series, code) {
  const d = series.derivation || {};
  const periods = d.periods || [];
  const shown = [app.state.period, app.state.compare].filter(Boolean);
  if (!d.crosswalk_method || !d.from_vintage || !shown.some((p) => periods.includes(p))) return null;
  const path = "/crosswalks/" + encodeURIComponent(d.from_vintage) + "/" +
    encodeURIComponent(app.state.vintage) + "/" + encodeURIComponent(d.from_level || app.state.level);
  if (!qualities.has(path)) {
    const answer = await app.api.request("GET", path);
    qualities.set(path, answer.ok ? answer.body : null);
  }
  const quality = qualities.get(path);
  const index = quality ? quality.codes.indexOf(code) : -1;
  if (index < 0) return null;
  const { t } = app.i18n;
  return h("p", { class: "gv-hint gv-covered" }, t("unit_covered", {
    from: d.from_vintage, share: app.i18n.fixed(100 * quality.covered_share[index], 1),
    weight: t("weight_" + (d.weight === "population" ? "population" : "area")) }));
}

/* "Incomplete sum: no figure for 14 communes of 2009": a figure summed from the parts that
   have one is never shown as a whole total. */
function incompleteLine(app, code) {
  const found = app.values && app.values.incomplete;
  const parts = found ? found.units[code] : undefined;
  if (!parts) return null;
  const { t, number } = app.i18n;
  return h("p", { class: "gv-hint gv-incomplete" }, t("unit_incomplete", {
    parts: number(parts, 0), level: app.cat.levelName(found.parts_level).toLowerCase(),
    vintage: found.parts_vintage }));
}

/* A province picked on the provinces' map offers its wards and communes (and districts where
   a boundary year has them): the finer level, classified within the province, framed. */
function lowerLevels(app, sel) {
  const { t } = app.i18n;
  if (sel.level !== "province" || app.state.level !== "province") return null;
  const finer = app.cat.levels(app.state.vintage).filter((level) => level !== "province");
  if (!finer.length) return null;
  // (the province is already framed: search and a click frame or show it)
  return h("div", { class: "gv-lower" }, finer.map((level) => h("button", { type: "button",
    class: "gv-apply gv-open-lower", dataset: { level },
    onclick: async () => {
      await app.select(null);
      await app.set({ level, scope: "province", within: sel.code, tab: "map" });
    } }, t("open_lower_" + level, { name: sel.name }))));
}
