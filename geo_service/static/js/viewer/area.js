/* Statistics of a drawn area (rectangle, polygon, or circle with its radius) for several
   indicators at once, with the population inside: values apportioned from the finest units
   by area or by population (POST /aggregate). The draw tool speaks the page's language. */
import { h, fill } from "../dom.js";
import { localiseDraw } from "../draw_i18n.js";
import { reportButtons } from "./report.js";

const POPULATION = ["population", "pop_worldpop"];

/* A circle as a polygon (geodesic: each vertex `radius` metres from the centre). */
function circlePolygon(centre, radius, sides) {
  const R = 6371008.8;
  const lat = (centre.lat * Math.PI) / 180, lng = (centre.lng * Math.PI) / 180, d = radius / R;
  const ring = [];
  for (let i = 0; i <= sides; i++) {
    const bearing = ((i % sides) / sides) * 2 * Math.PI;
    const lat2 = Math.asin(Math.sin(lat) * Math.cos(d) + Math.cos(lat) * Math.sin(d) * Math.cos(bearing));
    const lng2 = lng + Math.atan2(Math.sin(bearing) * Math.sin(d) * Math.cos(lat), Math.cos(d) - Math.sin(lat) * Math.sin(lat2));
    ring.push([(lng2 * 180) / Math.PI, (lat2 * 180) / Math.PI]);
  }
  return { type: "Polygon", coordinates: [ring] };
}

export function createAreaTab(app, root) {
  const { t, number, pick } = app.i18n;
  const map = app.map;
  const drawn = new L.FeatureGroup().addTo(map);
  let area = null; // {geometry, kind, radius}
  let result = null;
  let problem = null;
  let method = "area";
  const chosen = new Set();

  localiseDraw(t);
  map.addControl(new L.Control.Draw({
    position: "topright",
    draw: { polyline: false, marker: false, circlemarker: false,
      rectangle: { shapeOptions: { color: "#222", weight: 2, fill: false } },
      polygon: { shapeOptions: { color: "#222", weight: 2, fill: false } },
      circle: { shapeOptions: { color: "#222", weight: 2, fill: false }, metric: true } },
    edit: { featureGroup: drawn, edit: false },
  }));
  map.on(L.Draw.Event.CREATED, (e) => {
    drawn.clearLayers();
    drawn.addLayer(e.layer);
    if (e.layerType === "circle") {
      const radius = e.layer.getRadius();
      area = { geometry: circlePolygon(e.layer.getLatLng(), radius, 64), kind: "circle", radius };
    } else {
      area = { geometry: e.layer.toGeoJSON().geometry, kind: e.layerType, radius: null };
    }
    app.panel.showTab("area", true);
    compute();
  });
  map.on(L.Draw.Event.DELETED, () => { area = null; result = null; render(); });

  /* The finest level of the boundary year: values are apportioned from it. */
  function finest() {
    const levels = app.cat.vintage(app.state.vintage).levels.map((l) => l.id);
    return [...levels].reverse().find((l) => app.cat.seriesOf(app.state.vintage, l).length) || app.state.level;
  }

  function options() {
    return app.cat.seriesOf(app.state.vintage, finest()).filter((s) => s.kind !== "index");
  }

  function defaults() {
    if (chosen.size) return;
    const codes = options().map((s) => s.code);
    if (codes.includes(app.state.indicator)) chosen.add(app.state.indicator);
    for (const code of POPULATION) if (codes.includes(code)) { chosen.add(code); break; }
  }

  async function compute() {
    if (!area) return;
    defaults();
    result = null; problem = null;
    render();
    try {
      result = await app.api.post("/aggregate", { geometry: area.geometry, collection: finest() + "-" + app.state.vintage,
        indicators: [...chosen].slice(0, 20), method });
    } catch (err) {
      problem = err.message;
    }
    window.geoViewer.lastAggregate = result || { error: problem };
    render();
  }

  function resultTable() {
    const names = Object.fromEntries(app.cat.seriesOf(app.state.vintage, finest()).map((s) => [s.code, s]));
    return h("table", { class: "gv-area-table" },
      h("thead", {}, h("tr", {}, h("th", {}, t("indicator")), h("th", { class: "gv-num" }, t("col_value")))),
      h("tbody", {}, result.results.map((r) => {
        const s = names[r.indicator];
        const value = r.value === null ? t("status_" + r.status) : app.i18n.fixed(r.value, s ? s.decimals : 2) + " " + (s ? pick(s.unit) : r.unit || "");
        return h("tr", { dataset: { indicator: r.indicator } }, h("td", {}, s ? pick(s.name) : r.indicator),
          h("td", { class: "gv-num gv-agg-value" + (r.value === null ? " gv-status-" + r.status : "") }, value,
            r.period ? h("small", { class: "gv-parent" }, " " + r.period) : null));
      })));
  }

  function render() {
    defaults();
    const boxes = options().map((s) => h("label", { class: "gv-check" },
      h("input", { type: "checkbox", name: "agg-indicator", value: s.code, checked: chosen.has(s.code),
        onchange: (e) => { if (e.target.checked) chosen.add(s.code); else chosen.delete(s.code); compute(); } }),
      pick(s.name)));
    const methodRadio = (value) => h("label", { class: "gv-radio" }, h("input", { type: "radio", name: "agg-method", value,
      checked: method === value, onchange: () => { method = value; compute(); } }), t("agg_" + value));
    const parts = [h("p", { class: "gv-hint" }, t("area_help"))];
    if (area) {
      const shape = area.kind === "circle" ? t("area_circle", { r: number(area.radius / 1000, 2) }) : t("area_" + area.kind);
      parts.push(h("p", { class: "gv-area-shape" }, shape));
    }
    if (problem) parts.push(h("p", { class: "gv-problem", role: "alert" }, t("area_error") + ": " + problem));
    if (result) {
      parts.push(h("div", { class: "gv-aggregate" },
        h("p", {}, t("area") + ": " + number(result.area_km2, 3) + " km² · " + t("units") + ": " + result.units.filter((u) => u.share > 0.001).length),
        result.covered_share < 0.999 ? h("p", { class: "gv-agg-covered" }, t("covered") + ": " + number(result.covered_share * 100, 1) + " %") : null,
        resultTable(),
        reportButtons(app, () => ({ body: { geometry: area.geometry, collection: finest() + "-" + app.state.vintage, method } }))));
    } else if (area && !problem) parts.push(h("p", { class: "gv-hint" }, t("loading")));
    parts.push(h("fieldset", { class: "gv-group" }, h("legend", {}, t("agg_indicators")), boxes));
    parts.push(h("fieldset", { class: "gv-group" }, h("legend", {}, t("agg_method")), methodRadio("area"), methodRadio("population")));
    fill(root, parts);
  }

  return { render, compute };
}
