/* The map's layers: the choropleth drawn from geometry-only vector tiles (codes, no values:
   the nginx front can serve them as files) and coloured in the page by code; the province
   outlines; the selected unit's outline. Re-colouring touches the drawn features only and
   requests no tile. */

// Units without a value: patterns defined once in the page (#gv-patterns), distinct from the
// sea, the land and every ColorBrewer palette.
// (a value withheld while its disclosure protection is re-checked is not drawn as suppressed)
export const NO_VALUE_FILL = { suppressed: "url(#gv-suppressed)", not_available: "url(#gv-not-available)", rechecking: "url(#gv-rechecking)" };
export const NO_VALUE_SWATCH = { suppressed: "gv-swatch-suppressed", not_available: "gv-swatch-not-available", rechecking: "gv-swatch-rechecking" };

/* The SVG patterns for "suppressed" and "not available", added to the page once. */
export function addPatterns() {
  if (document.getElementById("gv-patterns")) return;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("id", "gv-patterns");
  svg.setAttribute("width", "0");
  svg.setAttribute("height", "0");
  svg.setAttribute("aria-hidden", "true");
  svg.style.position = "absolute";
  const defs = document.createElementNS(ns, "defs");
  const pattern = (id, ground, stripe, width) => {
    const p = document.createElementNS(ns, "pattern");
    p.setAttribute("id", id);
    p.setAttribute("width", "6");
    p.setAttribute("height", "6");
    p.setAttribute("patternUnits", "userSpaceOnUse");
    p.setAttribute("patternTransform", "rotate(45)");
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("width", "6"); rect.setAttribute("height", "6"); rect.setAttribute("fill", ground);
    const line = document.createElementNS(ns, "line");
    line.setAttribute("x1", "0"); line.setAttribute("y1", "0"); line.setAttribute("x2", "0"); line.setAttribute("y2", "6");
    line.setAttribute("stroke", stripe); line.setAttribute("stroke-width", width);
    p.appendChild(rect); p.appendChild(line);
    defs.appendChild(p);
  };
  pattern("gv-suppressed", "#5f5f5f", "#bdbdbd", "2");
  pattern("gv-not-available", "#ffffff", "#9a9a9a", "1.2");
  pattern("gv-rechecking", "#e3ebf3", "#7d97b3", "1");
  svg.appendChild(defs);
  document.body.appendChild(svg);
}

export function createChoropleth(map, api, handlers) {
  let layer = null;
  let outline = null;
  let styleOf = () => ({ fill: true, fillColor: "#eeeeee", fillOpacity: 0.9, color: "#fff", weight: 0.5 });
  const drawn = new Set();
  let tileLoads = 0;

  function tileUrl(collection) {
    return api.url("/collections/" + collection + "/tiles/WebMercatorQuad/{z}/{x}/{y}");
  }

  /* Draw a collection's units (new tiles only when the collection changes). */
  function show(collection, level) {
    if (layer && layer.collection === collection) return;
    if (layer) map.removeLayer(layer);
    drawn.clear();
    const styles = {};
    styles[collection] = (props, zoom) => { drawn.add(props.code); return styleOf(props.code, props, zoom); };
    layer = L.vectorGrid.protobuf(tileUrl(collection), {
      rendererFactory: L.svg.tile, interactive: true, maxNativeZoom: 14, pane: "overlayPane",
      vectorTileLayerStyles: styles, getFeatureId: (f) => f.properties.code, fetchOptions: api.fetchOptions(),
    });
    layer.collection = collection;
    layer.level = level;
    layer.on("mouseover", (e) => handlers.hover(e.layer.properties, e.latlng));
    layer.on("mouseout", () => handlers.leave());
    layer.on("click", (e) => handlers.click(e.layer.properties, e.latlng));
    layer.on("load", () => { tileLoads += 1; handlers.loaded(); });
    layer.addTo(map);
  }

  /* Colour every drawn unit again with `style(code)` (also used for tiles still to come). */
  function restyle(style) {
    styleOf = style;
    if (!layer) return;
    // VectorGrid 1.3 has no "restyle all": the drawn tiles' features are updated here; when
    // only the fill changes (a new indicator, classes, palette) only the fill is written
    const styles = layer.options.vectorTileLayerStyles[layer.collection];
    for (const tile of Object.values(layer._vectorTiles || {})) {
      const zoom = tile.getCoord().z;
      for (const data of Object.values(tile._features || {})) {
        const feat = data.feature;
        const next = styles(feat.properties, zoom);
        const now = feat.options || {};
        if (feat._path && now.weight === next.weight && now.color === next.color && now.opacity === next.opacity) {
          if (now.fillColor !== next.fillColor) feat._path.setAttribute("fill", next.fillColor);
          if (now.fillOpacity !== next.fillOpacity) feat._path.setAttribute("fill-opacity", next.fillOpacity);
          feat.options = { ...now, fillColor: next.fillColor, fillOpacity: next.fillOpacity };
        } else {
          layer._updateStyles(feat, tile, styles);
        }
      }
    }
  }

  /* The selected unit's outline, on top of everything. */
  async function highlight(collection, code) {
    if (outline) { map.removeLayer(outline); outline = null; }
    if (!code) return null;
    const feature = await api.get("/collections/" + collection + "/items/" + encodeURIComponent(code),
      { zoom: Math.max(6, Math.min(12, Math.round(map.getZoom()) + 2)), properties: "code,name" });
    outline = L.geoJSON(feature, { interactive: false, pane: "gvOutline",
      style: { color: "#111", weight: 3, fill: false, opacity: 1 } }).addTo(map);
    return feature;
  }

  return {
    show, restyle, highlight,
    drawnCount: () => drawn.size,
    hasDrawn: (code) => drawn.has(code),
    tileLoads: () => tileLoads,
    fillOf: (code) => styleOf(code, { code }).fillColor,
    current: () => layer,
  };
}

/* Province (or other upper-level) outlines over a finer choropleth, from the same cached
   geometry-only tiles. */
export function createOutlines(map, api) {
  let layer = null;
  function show(collection) {
    if (layer && layer.collection === collection) return;
    hide();
    if (!collection) return;
    const styles = {};
    styles[collection] = () => ({ fill: false, color: "#3d3d3d", weight: 1.3, opacity: 0.9 });
    layer = L.vectorGrid.protobuf(api.url("/collections/" + collection + "/tiles/WebMercatorQuad/{z}/{x}/{y}"), {
      rendererFactory: L.svg.tile, interactive: false, maxNativeZoom: 14, pane: "gvOutlines",
      vectorTileLayerStyles: styles, fetchOptions: api.fetchOptions(),
    });
    layer.collection = collection;
    layer.addTo(map);
  }
  function hide() { if (layer) { map.removeLayer(layer); layer = null; } }
  return { show, hide };
}

/* Panes, bottom to top: base maps, context, choropleth (overlayPane), overlays (roads,
   WorldPop), outlines, the selected unit, labels. */
export function addPanes(map) {
  const panes = [["gvBase", 150], ["gvContext", 300], ["gvOverlays", 420], ["gvOutlines", 430],
    ["gvOutline", 440], ["gvLabels", 450]];
  for (const [name, z] of panes) {
    if (!map.getPane(name)) map.createPane(name).style.zIndex = String(z);
  }
  map.getPane("gvLabels").style.pointerEvents = "none";
  map.getPane("gvOutline").style.pointerEvents = "none";
  map.getPane("gvOverlays").style.pointerEvents = "none";
}
