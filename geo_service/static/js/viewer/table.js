/* The ranking table: the units of the current scope (a province, the view, or all), ranked
   by value (1 = highest; equal values share a rank; units without a value are listed last,
   unranked), sortable by any column, and downloadable as exactly this table (CSV). */
import { h, fill, download } from "../dom.js";

const PAGE = 200;

export function createTableTab(app, root) {
  const { t, number, pick } = app.i18n;
  let sort = { key: "rank", desc: false };
  let limit = PAGE;

  function rows() {
    const table = app.tables[app.collection()];
    if (!table || !app.values) return [];
    const st = app.state;
    let inScope = () => true;
    if (st.scope === "province" && st.within) inScope = (i) => table.parents[i] === st.within;
    else if (st.scope === "view") {
      const b = app.map.getBounds();
      inScope = (i) => b.contains([table.labels[i][1], table.labels[i][0]]);
    }
    const out = [];
    table.codes.forEach((code, i) => {
      if (!inScope(i)) return;
      const [value, status] = app.lookup.get(code) || [null, "not_available"];
      out.push({ code, name: table.names[i], parent: table.parentNames[table.parents[i]] || "", value, status });
    });
    // rank: 1 for the highest value, ties share the rank
    const ranked = out.filter((r) => r.value !== null).sort((a, b) => b.value - a.value);
    ranked.forEach((r, i) => { r.rank = i > 0 && ranked[i - 1].value === r.value ? ranked[i - 1].rank : i + 1; });
    return out;
  }

  function sorted(list) {
    const dir = sort.desc ? -1 : 1;
    const key = sort.key;
    return list.slice().sort((a, b) => {
      if (key === "name") return dir * a.name.localeCompare(b.name, app.i18n.locale);
      if (key === "code") return dir * a.code.localeCompare(b.code);
      const av = key === "rank" ? a.rank : a.value, bv = key === "rank" ? b.rank : b.value;
      if (av === undefined || av === null) return bv === undefined || bv === null ? a.code.localeCompare(b.code) : 1;
      if (bv === undefined || bv === null) return -1;
      return dir * (av - bv);
    });
  }

  function valueText(r) {
    if (r.value === null) return t("status_" + r.status);
    return (app.state.compare ? app.i18n.signed(r.value, app.values.decimals) : app.i18n.fixed(r.value, app.values.decimals));
  }

  function csv(list) {
    const quote = (v) => '"' + String(v === null || v === undefined ? "" : v).replace(/"/g, '""') + '"';
    const series = app.series();
    const head = [t("col_rank"), t("col_code"), t("col_name"), t("col_parent"), pick(series.name) + " (" + app.values.unit + ")", t("col_status")];
    const lines = [head.map(quote).join(",")];
    for (const r of list) lines.push([r.rank || "", r.code, r.name, r.parent, r.value === null ? "" : r.value, t("status_" + r.status)].map(quote).join(","));
    return "\ufeff" + lines.join("\r\n") + "\r\n";
  }

  function header(key, label, numeric) {
    const on = sort.key === key;
    return h("th", { scope: "col", class: numeric ? "gv-num" : null, "aria-sort": on ? (sort.desc ? "descending" : "ascending") : "none" },
      h("button", { type: "button", class: "gv-sort", dataset: { key }, onclick: () => {
        sort = { key, desc: on ? !sort.desc : key === "value" };
        render();
      } }, label, on ? (sort.desc ? " ▼" : " ▲") : ""));
  }

  function render() {
    const series = app.series();
    if (!series || !app.values) { fill(root, h("p", { class: "gv-hint" }, t("loading"))); return; }
    const list = sorted(rows());
    window.geoViewer.lastTable = list;
    const st = app.state;
    const scope = st.scope === "province" ? t("table_scope_province", { name: (app.tables["province-" + st.vintage] || { names: [], codes: [] }).names[(app.tables["province-" + st.vintage] || { codes: [] }).codes.indexOf(st.within)] || st.within })
      : st.scope === "view" ? t("table_scope_view") : t("table_scope_all", { level: app.cat.levelName(st.level) });
    const filename = [series.code, st.vintage, st.level, st.compare ? st.compare + "-" + st.period : st.period, st.scope === "province" ? st.within : st.scope].join("_") + ".csv";
    fill(root,
      h("p", { class: "gv-table-scope" }, scope, " · ", t("table_count", { n: list.length })),
      h("p", { class: "gv-table-what" }, pick(series.name) + " · " + (st.compare ? st.compare + " → " : "") + st.period + " · " + app.values.unit),
      h("div", { class: "gv-table-actions" },
        h("button", { type: "button", class: "gv-table-download", onclick: () => download(filename, csv(list)) }, t("table_download")),
        h("small", { class: "gv-hint" }, t("table_hint"))),
      h("div", { class: "gv-table-wrap" }, h("table", { class: "gv-rank-table" },
        h("thead", {}, h("tr", {}, header("rank", t("col_rank"), true), header("name", t("col_name")), header("value", t("col_value"), true))),
        h("tbody", {}, list.slice(0, limit).map((r) => h("tr", { dataset: { code: r.code }, class: app.selected && app.selected.code === r.code ? "gv-selected" : null },
          h("td", { class: "gv-num" }, r.rank || "–"),
          h("td", {}, h("button", { type: "button", class: "gv-link", onclick: () => app.select(r.code, { fit: true }) }, r.name),
            r.parent && st.scope !== "province" ? h("small", { class: "gv-parent" }, " " + r.parent) : null),
          h("td", { class: "gv-num" + (r.value === null ? " gv-status-" + r.status : "") }, valueText(r))))))),
      list.length > limit ? h("button", { type: "button", class: "gv-more", onclick: () => { limit += PAGE; render(); } }, t("table_more", { n: list.length - limit })) : null);
  }

  return { render };
}
