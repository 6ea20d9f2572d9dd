/* The map viewer: choropleth layers, legend, controls, tooltips, search, draw → /aggregate.
   The page (built with Folium) holds its settings as JSON in #geo-viewer-config; text from
   data reaches the page only through geoSafe (safe.js). */
(function () {
  "use strict";
  const cfg = window.geoSafe.config("geo-viewer-config");
  const escape = window.geoSafe.escape;
  const map = window[cfg.mapName];
  const t = (key) => (cfg.labels[key] || key);
  const classes = cfg.choropleth.classes || [];
  // (not available: darker than the light middle of diverging palettes, #f7f7f7)
  const NO_VALUE = { suppressed: "#9e9e9e", not_available: "#d0d0d0" };
  const drawn = new Set();
  const byCode = {};

  function fmt(value, decimals) {
    if (value === null || value === undefined) return "–";
    return Number(value).toLocaleString(cfg.lang === "vi" ? "vi-VN" : "en-GB",
      { maximumFractionDigits: decimals === undefined ? cfg.choropleth.indicator.decimals : decimals });
  }

  function colourOf(value, status) {
    if (status !== "ok" && status !== "provisional") return NO_VALUE[status] || NO_VALUE.not_available;
    for (const c of classes) if (value <= c.upper) return c.colour;
    return classes.length ? classes[classes.length - 1].colour : NO_VALUE.not_available;
  }

  function style(props) {
    const ind = cfg.indicator;
    const status = props[ind + "_status"] || "not_available";
    return { fill: true, fillColor: colourOf(props[ind], status), fillOpacity: 0.85,
             color: "#ffffff", weight: cfg.level === "province" ? 1 : 0.4, opacity: 1 };
  }

  function describe(props) {
    const ind = cfg.indicator;
    const status = props[ind + "_status"] || "not_available";
    const value = status === "ok" || status === "provisional"
      ? fmt(props[ind]) + " " + cfg.choropleth.indicator.unit : t("status_" + status);
    return "<b>" + escape(props.name) + "</b> (" + escape(props.code) + ")<br>" + escape(value) +
      (status === "provisional" ? " (" + escape(t("status_provisional")) + ")" : "");
  }

  async function showHistory(code, latlng) {
    const url = cfg.api + "/indicators/" + cfg.indicator + "/values?vintage=" + cfg.vintage +
      "&level=" + cfg.level + "&unit=" + encodeURIComponent(code);
    const body = await (await fetch(url)).json();
    const rows = (body.values || []).map((v) => "<tr><td>" + escape(v.period) + "</td><td>" +
      escape(v.value === null ? t("status_" + v.status) : fmt(v.value)) + "</td></tr>").join("");
    const name = body.values && body.values.length ? body.values[0].name : code;
    L.popup().setLatLng(latlng).setContent("<b>" + escape(name) + "</b> (" + escape(code) +
      ")<table class='gv-history'>" + rows + "</table>").openOn(map);
  }

  function addProvinces() {
    const url = cfg.api + "/collections/" + cfg.collection + "/items?limit=10000&zoom=6&precision=4" +
      "&indicator=" + cfg.indicator + "&period=" + cfg.period;
    return fetch(url).then((r) => r.json()).then((fc) => {
      const layer = L.geoJSON(fc, {
        style: (f) => style(f.properties),
        onEachFeature: (f, l) => {
          drawn.add(f.properties.code);
          byCode[f.properties.code] = l;
          l.bindTooltip(() => describe(f.properties), { sticky: true });
          l.on("click", (e) => showHistory(f.properties.code, e.latlng));
        },
      }).addTo(map);
      return layer;
    });
  }

  function addCommunes() {
    const url = cfg.api + "/collections/" + cfg.collection +
      "/tiles/WebMercatorQuad/{z}/{x}/{y}?indicator=" + cfg.indicator + "&period=" + cfg.period;
    const styles = {};
    styles[cfg.collection] = (props) => {
      drawn.add(props.code);
      return style(props);
    };
    const tooltip = L.tooltip({ sticky: true });
    const layer = L.vectorGrid.protobuf(url, {
      rendererFactory: L.svg.tile, interactive: true, maxNativeZoom: 14,
      vectorTileLayerStyles: styles, getFeatureId: (f) => f.properties.code,
    });
    layer.on("mouseover", (e) => tooltip.setLatLng(e.latlng).setContent(describe(e.layer.properties)).openOn(map));
    layer.on("mouseout", () => map.closeTooltip(tooltip));
    layer.on("click", (e) => showHistory(e.layer.properties.code, e.latlng));
    layer.on("load", () => { window.geoViewer.tilesLoaded = true; });
    layer.addTo(map);
    return Promise.resolve(layer);
  }

  function legend() {
    const control = L.control({ position: "bottomright" });
    control.onAdd = () => {
      const div = L.DomUtil.create("div", "gv-legend");
      const c = cfg.choropleth;
      let html = "<div class='gv-title'>" + escape(c.indicator["name_" + cfg.lang]) + "</div>" +
        "<div class='gv-sub'>" + escape(c.indicator.unit + " · " + cfg.period + " · " +
        c.method_name[cfg.lang]) + "</div>";
      for (const k of classes) {
        html += "<div class='gv-row' data-upper='" + escape(k.upper) + "'><i style='background:" +
          escape(k.colour) + "'></i><span class='gv-range'>" + escape(fmt(k.lower) + " – " +
          fmt(k.upper)) + "</span> <span class='gv-count'>(" + escape(k.count) + ")</span></div>";
      }
      for (const status of ["suppressed", "not_available"]) {
        html += "<div class='gv-row gv-" + status + "'><i style='background:" + NO_VALUE[status] +
          "'></i>" + escape(t("status_" + status) + " (" + (c.no_value[status] || 0) + ")") +
          "</div>";
      }
      if (c.warning) html += "<div class='gv-warning'>" + escape(t("raw_count")) + "</div>";
      if (c.note) html += "<div class='gv-note'>" + escape(c.note) + "</div>";
      div.innerHTML = html;
      return div;
    };
    control.addTo(map);
  }

  function controls() {
    const control = L.control({ position: "topright" });
    control.onAdd = () => {
      const div = L.DomUtil.create("div", "gv-controls");
      div.innerHTML = cfg.controlsHtml;
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      div.querySelectorAll("select, input[name=breaks]").forEach((el) => el.addEventListener("change", () => {
        const form = div.querySelector("form");
        const params = new URLSearchParams(new FormData(form));
        if (el.name === "level" || el.name === "indicator" || el.name === "vintage") params.delete("period");
        for (const [k, v] of [...params.entries()]) if (!v) params.delete(k);
        window.location.search = params.toString();
      }));
      const search = div.querySelector("input[name=q]");
      const results = div.querySelector(".gv-results");
      search.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); runSearch(search.value, results); } });
      div.querySelector("button.gv-search").addEventListener("click", (e) => { e.preventDefault(); runSearch(search.value, results); });
      return div;
    };
    control.addTo(map);
  }

  async function runSearch(text, results) {
    if (!text.trim()) return;
    const url = cfg.api + "/collections/" + cfg.collection + "/items?limit=10&properties=code,name,parent_code&zoom=9&q=" +
      encodeURIComponent(text);
    const fc = await (await fetch(url)).json();
    results.innerHTML = "";
    if (!fc.features.length) { results.textContent = t("no_match"); return; }
    for (const f of fc.features) {
      const a = L.DomUtil.create("a", "gv-hit", results);
      a.href = "#";
      a.textContent = f.properties.name + " (" + f.id + ")";
      a.addEventListener("click", (e) => { e.preventDefault(); zoomTo(f); });
    }
    zoomTo(fc.features[0]);
  }

  function zoomTo(feature) {
    const bounds = L.geoJSON(feature).getBounds();
    map.fitBounds(bounds, { maxZoom: 12 });
    window.geoViewer.lastZoomed = feature.id;
  }

  function drawTool() {
    const items = new L.FeatureGroup().addTo(map);
    map.addControl(new L.Control.Draw({
      position: "topleft",
      draw: { polyline: false, circle: false, marker: false, circlemarker: false,
              rectangle: { shapeOptions: { color: "#333", weight: 2, fill: false } },
              polygon: { shapeOptions: { color: "#333", weight: 2, fill: false } } },
      edit: { featureGroup: items, edit: false },
    }));
    map.on(L.Draw.Event.CREATED, async (e) => {
      items.clearLayers();
      items.addLayer(e.layer);
      const body = { geometry: e.layer.toGeoJSON().geometry, indicators: [cfg.indicator],
                     collection: cfg.aggregateCollection, method: "area" };
      if (cfg.period) body.period = cfg.period;
      const response = await fetch(cfg.api + "/aggregate", { method: "POST",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const result = await response.json();
      showAggregate(e.layer, result, response.ok);
    });
  }

  function showAggregate(layer, result, ok) {
    let html;
    if (!ok) {
      html = "<b>" + escape(t("area_error")) + "</b><br>" + escape(result.detail || "");
    } else {
      const r = result.results[0];
      const value = r.value === null ? t("status_" + r.status) : fmt(r.value) + " " + (r.unit || "");
      html = "<div class='gv-aggregate'><b>" + escape(t("area_stats")) + "</b><br>" +
        escape(t("area") + ": " + fmt(result.area_km2, 3) + " km²") + "<br>" +
        escape(cfg.choropleth.indicator["name_" + cfg.lang]) + ": <span class='gv-agg-value'>" +
        escape(value) + "</span><br>" +
        escape(t("units") + ": " + result.units.filter((u) => u.share > 0.001).length) +
        // values describe only the part of the drawn area that lies within units
        (result.covered_share < 0.999 ? "<br><span class='gv-agg-covered'>" +
          escape(t("covered") + ": " + fmt(result.covered_share * 100, 1) + " %") + "</span>" : "") +
        "</div>";
    }
    window.geoViewer.lastAggregate = result;
    layer.bindPopup(html).openPopup();
  }

  function downloads() {
    const control = L.control({ position: "bottomleft" });
    control.onAdd = () => {
      const div = L.DomUtil.create("div", "gv-downloads");
      const link = (format, label) => {
        const a = L.DomUtil.create("a", "gv-download-" + format, div);
        a.textContent = label;
        a.addEventListener("click", () => {
          const b = map.getBounds();
          const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(",");
          a.href = cfg.api + "/collections/" + cfg.collection + "/items?limit=10000&indicator=" +
            cfg.indicator + "&period=" + cfg.period + "&bbox=" + bbox + "&f=" + format;
        });
        return a;
      };
      div.appendChild(document.createTextNode(t("download") + ": "));
      link("csv", "CSV");
      div.appendChild(document.createTextNode(" · "));
      link("json", "GeoJSON");
      return div;
    };
    control.addTo(map);
  }

  window.geoViewer = {
    map, byCode, config: cfg, tilesLoaded: false, ready: false, lastAggregate: null, lastZoomed: null,
    drawnCount: () => drawn.size,
    fillOf: (code) => (byCode[code] ? byCode[code].options.fillColor : null),
    colourOf,
  };
  map.fitBounds(cfg.bounds);
  controls();
  legend();
  downloads();
  drawTool();
  const ready = cfg.level === "province" ? addProvinces() : addCommunes();
  ready.then(() => { window.geoViewer.ready = true; });
})();
