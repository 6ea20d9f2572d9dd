/* The viewer's choices checked against the catalogue of series: an unknown or mismatched
   choice (from a link, or left over after another change) falls back to a valid one with a
   neutral notice in the page's language. The page and every later change use these rules. */

export const URL_KEYS = ["lang", "vintage", "level", "indicator", "period", "method", "k", "palette",
  "breaks", "compare", "cv", "change", "scope", "within", "unit", "lat", "lng", "z", "base",
  "layers", "tab"];
export const DEFAULT_LAYERS = "boundaries,labels,roads";
const TABS = ["map", "unit", "table", "area", "about"];
const SCOPES = ["all", "province", "view"];
const CHANGES = ["absolute", "percent"];

export function createCatalogue(cfg, i18n) {
  const { t, pick } = i18n;
  const cat = cfg.catalogue;

  function vintages() { return cat.vintages.map((v) => v.id); }
  function vintage(id) { return cat.vintages.find((v) => v.id === id) || null; }
  function seriesOf(v, level) { return cat.series.filter((s) => s.vintage === v && s.level === level); }
  function series(v, level, code) { return cat.series.find((s) => s.vintage === v && s.level === level && s.code === code) || null; }
  function levels(v) {
    const entry = vintage(v);
    return entry ? entry.levels.map((l) => l.id).filter((l) => seriesOf(v, l).length) : [];
  }
  function levelName(level) { return t("level_" + level); }
  /* Whether vintage a is older than b: by their dates (the server lists vintages newest
     first by valid_from), not their ids as text ('census2019' would sort after '2025'). */
  function older(a, b) {
    const ids = vintages();
    return ids.indexOf(a) > ids.indexOf(b) && ids.indexOf(b) >= 0;
  }

  /* Earlier periods to compare with: this vintage's, then older vintages' (carried through
     the crosswalk; counts and quotients only). */
  function comparisons(s) {
    const options = s.periods.filter((p) => p < (s.periods[s.periods.length - 1] || ""))
      .map((p) => ({ period: p, vintage: s.vintage }));
    if (s.kind !== "index") {
      for (const other of cat.series) {
        if (other.code === s.code && other.level === s.level && older(other.vintage, s.vintage)) {
          for (const p of other.periods) options.push({ period: p, vintage: other.vintage });
        }
      }
    }
    return options;
  }

  /* A valid state from `raw` (URL or a change), with notices for what was replaced. */
  function resolve(raw) {
    const notices = [];
    const st = {};
    const replaced = (what, given, shown) => notices.push(t("notice_replaced", { what, given, shown }));
    const vs = vintages();
    st.vintage = vs.includes(raw.vintage) ? raw.vintage : vs[0];
    if (raw.vintage && raw.vintage !== st.vintage) replaced(t("vintage"), raw.vintage, st.vintage);
    const ls = levels(st.vintage);
    st.level = ls.includes(raw.level) ? raw.level : ls[0];
    if (raw.level && raw.level !== st.level) replaced(t("level"), raw.level, levelName(st.level));
    const available = seriesOf(st.vintage, st.level);
    const fallback = available.find((s) => s.code === "density") || available[0];
    let chosen = available.find((s) => s.code === raw.indicator);
    if (!chosen && fallback) {
      if (raw.indicator) {
        const elsewhere = cat.series.find((s) => s.code === raw.indicator);
        notices.push(elsewhere
          ? t("notice_indicator_elsewhere", { name: pick(elsewhere.name), level: levelName(st.level), vintage: st.vintage, shown: pick(fallback.name) })
          : t("notice_replaced", { what: t("indicator"), given: raw.indicator, shown: pick(fallback.name) }));
      }
      chosen = fallback;
    }
    st.indicator = chosen ? chosen.code : null;
    const periods = chosen ? chosen.periods : [];
    st.period = periods.includes(raw.period) ? raw.period : periods[periods.length - 1] || null;
    if (raw.period && raw.period !== st.period) replaced(t("period"), raw.period, st.period);
    st.compare = null; st.cv = null;
    if (raw.compare && chosen) {
      const cv = raw.cv || st.vintage;
      const ok = comparisons(chosen).find((c) => c.period === raw.compare && c.vintage === cv && (cv !== st.vintage || c.period < st.period));
      if (ok) { st.compare = ok.period; st.cv = ok.vintage === st.vintage ? null : ok.vintage; }
      else notices.push(t("notice_compare", { given: raw.compare }));
    }
    st.change = CHANGES.includes(raw.change) ? raw.change : "absolute";
    st.method = cfg.methods.includes(raw.method) ? raw.method : "quantiles";
    if (raw.method && raw.method !== st.method) replaced(t("method"), raw.method, t("method_" + st.method));
    const k = Number(raw.k);
    st.k = Number.isInteger(k) && k >= 3 && k <= 7 ? k : 5;
    if (raw.k && String(st.k) !== String(raw.k)) replaced(t("k"), raw.k, st.k);
    const palettes = [...cfg.palettes.sequential, ...cfg.palettes.diverging];
    st.palette = palettes.includes(raw.palette) ? raw.palette : null;
    if (raw.palette && !st.palette) replaced(t("palette"), raw.palette, t("palette_default"));
    st.breaks = raw.breaks && /^[0-9eE.,+ -]{1,500}$/.test(raw.breaks) ? raw.breaks : null;
    if (st.method === "manual" && !st.breaks) {
      if (raw.method === "manual") notices.push(t("notice_breaks_missing"));
      st.method = "quantiles";
    }
    st.scope = SCOPES.includes(raw.scope) ? raw.scope : "all";
    st.within = /^[0-9A-Za-z_.-]{1,32}$/.test(raw.within || "") ? raw.within : null;
    if (st.scope === "province" && !st.within) st.scope = "all";
    if (st.scope !== "province") st.within = null;
    st.unit = /^[0-9A-Za-z_.-]{1,32}$/.test(raw.unit || "") ? raw.unit : null;
    const lat = Number(raw.lat), lng = Number(raw.lng), z = Number(raw.z);
    st.lat = raw.lat && Math.abs(lat) <= 85 ? lat : null;
    st.lng = raw.lng && Math.abs(lng) <= 180 ? lng : null;
    st.z = raw.z && z >= 0 && z <= 20 ? Math.round(z * 10) / 10 : null;
    st.base = raw.base || null;
    st.layers = typeof raw.layers === "string" ? raw.layers : DEFAULT_LAYERS;
    st.tab = TABS.includes(raw.tab) ? raw.tab : "map";
    st.lang = cfg.lang;
    return { state: st, notices };
  }

  return { resolve, vintages, vintage, levels, seriesOf, series, comparisons, levelName };
}
