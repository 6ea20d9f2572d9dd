/* Base maps and overlays, all served by the service itself: the built-in orientation map
   (sea, unit outlines and names from the loaded boundaries), the operator's MBTiles, PMTiles
   or GeoTIFF base maps, the national roads and railways, and where people live (WorldPop).
   A layer whose file is missing or unreadable is listed, greyed, with the reason. */
import { h } from "../dom.js";

/* Attribution text goes into Leaflet's attribution control, which takes HTML: as text. */
function asText(value) {
  const div = document.createElement("div");
  div.textContent = value || "";
  return div.innerHTML;
}

/* A generic style for vector base maps by layer name (OpenMapTiles, Protomaps and alike). */
function vectorStyle(name) {
  const n = name.toLowerCase();
  if (/water|ocean|sea|lake/.test(n) && !/way|line/.test(n)) return { fill: true, fillColor: "#b7d3e6", fillOpacity: 1, stroke: false };
  if (/waterway|river/.test(n)) return { color: "#8db8d6", weight: 1 };
  if (/park|landcover|landuse|wood|forest|natural/.test(n)) return { fill: true, fillColor: "#dfe8d3", fillOpacity: 0.8, stroke: false };
  if (/building/.test(n)) return { fill: true, fillColor: "#d9d4cc", fillOpacity: 0.9, stroke: false };
  if (/road|transport|street|highway/.test(n)) return { color: "#ffffff", weight: 1.4 };
  if (/rail/.test(n)) return { color: "#999999", weight: 1, dashArray: "3 2" };
  if (/boundar|admin/.test(n)) return { color: "#9c8fa6", weight: 1, dashArray: "4 3", fill: false };
  if (/place|label|poi|name/.test(n)) return { radius: 0, weight: 0, fill: false, stroke: false };
  return { color: "#c8c4bb", weight: 0.6, fill: false };
}

/* options.builtIn = false: a page without the viewer's own orientation map, province
   boundaries and names (the EA editor): its bases are the operator's and "no base". */
export function createBaseLayers(app, options) {
  const builtIn = !options || options.builtIn !== false;
  const fallback = builtIn ? "orientation" : "none";
  const { t, pick } = app.i18n;
  const map = app.map;
  const layers = app.cfg.basemaps;
  const drawn = {}; // id → Leaflet layer
  const container = map.getContainer();

  function make(entry) {
    const attribution = asText(entry.attribution);
    if (entry.kind === "xyz") return L.tileLayer(entry.url, { attribution, pane: "gvBase" });
    if (entry.kind === "geojson") {
      const layer = L.geoJSON(null, { pane: "gvOverlays", interactive: false, attribution,
        style: (f) => f.properties.kind === "railway" ? { color: "#3a3a3a", weight: 1.3, dashArray: "4 3", opacity: 0.75 }
          : f.properties.kind === "main" ? { color: "#6b4e3d", weight: 1.1, opacity: 0.55 } : { color: "#8a6d5a", weight: 0.8, opacity: 0.45 } });
      app.api.get("/basemaps/" + entry.id + "/data.geojson").then((data) => layer.addData(data)).catch(() => {});
      return layer;
    }
    const url = app.api.url("/basemaps/" + entry.id + "/{z}/{x}/{y}");
    const options = { attribution, pane: entry.overlay ? "gvOverlays" : "gvBase", minZoom: 0,
      maxNativeZoom: entry.maxZoom || 18, bounds: entry.bounds ? [[entry.bounds[1], entry.bounds[0]], [entry.bounds[3], entry.bounds[2]]] : undefined };
    if (entry.format === "pbf") {
      const styles = {};
      for (const name of entry.layers) styles[name] = vectorStyle(name);
      return L.vectorGrid.protobuf(url, { ...options, rendererFactory: L.svg.tile, interactive: false, vectorTileLayerStyles: styles });
    }
    return L.tileLayer(url, { ...options, opacity: entry.overlay ? 0.8 : 1 });
  }

  function wanted(entry) {
    if (!entry.available) return false;
    if (entry.overlay) return app.layerOn(entry.id);
    return (app.state.base || fallback) === entry.id;
  }

  /* Show what the state asks for. */
  function update() {
    for (const entry of layers) {
      const on = wanted(entry);
      if (on && !drawn[entry.id]) drawn[entry.id] = make(entry).addTo(map);
      else if (!on && drawn[entry.id]) { map.removeLayer(drawn[entry.id]); delete drawn[entry.id]; }
    }
    const base = app.state.base || fallback;
    container.classList.toggle("gv-base-orientation", base === "orientation");
    container.classList.toggle("gv-base-none", base === "none");
    map.attributionControl.setPrefix(false);
    for (const text of [t("attribution_boundaries")]) map.attributionControl.addAttribution(asText(text));
  }

  function setBase(id) {
    app.state = { ...app.state, base: id === fallback ? null : id };
    update();
    app.writeUrl(true);
  }

  /* The layer switcher (in the map tab). */
  function controls() {
    const base = app.state.base || fallback;
    const radio = (id, label, entry) => h("label", { class: "gv-radio" + (entry && !entry.available ? " gv-unavailable" : "") },
      h("input", { type: "radio", name: "base", value: id, checked: base === id, disabled: entry ? !entry.available : false,
        onchange: () => setBase(id) }), label,
      entry && !entry.available ? h("small", { class: "gv-problem-inline" }, " (" + t("basemap_" + entry.problem) + ")") : null,
      entry && entry.attribution ? h("small", { class: "gv-attribution" }, " © " + entry.attribution) : null);
    const check = (id, label, entry) => h("label", { class: "gv-check" + (entry && !entry.available ? " gv-unavailable" : "") },
      h("input", { type: "checkbox", name: "layer-" + id, value: id, checked: app.layerOn(id) && (!entry || entry.available),
        disabled: entry ? !entry.available : false, onchange: (e) => app.toggleLayer(id, e.target.checked) }), label,
      entry && !entry.available ? h("small", { class: "gv-problem-inline" }, " (" + t("basemap_" + entry.problem) + ")") : null,
      entry && entry.attribution ? h("small", { class: "gv-attribution" }, " © " + entry.attribution) : null);
    const bases = layers.filter((e) => !e.overlay);
    const overlays = layers.filter((e) => e.overlay);
    return h("fieldset", { class: "gv-group gv-layers" }, h("legend", {}, t("layers")),
      h("div", { class: "gv-sublegend" }, t("base")),
      builtIn ? radio("orientation", t("base_orientation")) : null,
      bases.map((e) => radio(e.id, pick(e.title), e)),
      radio("none", t("base_none")),
      h("div", { class: "gv-sublegend" }, t("overlays")),
      builtIn ? check("boundaries", t("layer_boundaries")) : null,
      builtIn ? check("labels", t("layer_labels")) : null,
      overlays.map((e) => check(e.id, pick(e.title), e)));
  }

  return { update, controls, drawn: () => Object.keys(drawn) };
}
