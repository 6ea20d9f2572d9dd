/* The enumeration-area editor: one commune's EAs, drawn, edited (one at a time), split,
   merged, described, organised into supervisor areas, assigned to enumerators, submitted,
   reviewed and restored from their history, through the API with the user's token.
   Nothing is destroyed without a confirmation that says how much; rule problems are shown
   on the map. Works with a mouse or a finger (tap to select; "select several" for merges).
   The page (built with Folium) holds its settings as JSON in #ea-editor-config; text from
   data reaches the page only through geoSafe (safe.js). */
import { createApi } from "./api.js";
import { createI18n } from "./i18n.js";
import { createJobs } from "./jobs.js";
import { createOrganiser } from "./ea_organise.js";
import { createBaseLayers } from "./viewer/basemaps.js";
import { addPanes } from "./viewer/layers.js";

(function () {
  "use strict";
  const cfg = window.geoSafe.config("ea-editor-config");
  const escape = window.geoSafe.escape;
  const map = window[cfg.mapName];
  const API = cfg.api;
  const ITEMS = API + "/collections/enumeration-areas/items";
  const TOKEN_KEY = "geoServiceToken";
  const RANK = { viewer: 0, editor: 1, supervisor: 2, admin: 3 };
  const PHONE_WIDTH = 760; // px: below this the panel is a sheet over the map's lower part

  /* A text of the page's language, with {name} filled in. */
  function t(key, vars) {
    let text = Object.prototype.hasOwnProperty.call(cfg.labels, key) ? cfg.labels[key] : key;
    for (const [name, value] of Object.entries(vars || {})) text = text.split("{" + name + "}").join(String(value));
    return text;
  }

  // (Leaflet titles its zoom buttons in English; screen readers read them aloud)
  for (const [side, key] of [["in", "zoom_in"], ["out", "zoom_out"]]) {
    const button = map.getContainer().querySelector(".leaflet-control-zoom-" + side);
    if (button) { button.title = t(key); button.setAttribute("aria-label", t(key)); }
  }

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY), user: null, eas: {}, selected: [], multi: false,
    coverage: null, lines: null, drawControl: null, message: null, rejected: null, tab: "eas",
    editing: null, history: null, review: null, reviewFocus: 0, areas: null, staff: [],
    workload: null, shared: null,
  };
  const editable = L.featureGroup().addTo(map);
  const findings = L.featureGroup().addTo(map);
  const gaps = L.featureGroup().addTo(map);
  const overlay = L.featureGroup().addTo(map);  // neighbours, history versions, review changes
  let tiles = null;
  const tileCodes = new Set();  // EA codes drawn from the tiles since the last redraw
  let panel = null;
  // bulk selection and proposals on the Organise tab (ea_organise.js)
  const organiser = createOrganiser({
    map, cfg, t, escape, fmt, call, afterWrite, confirmAction, showError, showMessage,
    eas: () => state.eas, selected: () => state.selected.slice(), areas: () => state.areas,
    workload: () => state.workload, canEdit: () => canEdit(), render: () => render(),
    setSelected: (ids) => { state.selected = ids; state.history = null; restyle(); render(); },
    setMulti: (on) => { state.multi = on; restyle(); },
    clearMessage: () => { state.message = null; },
  });

  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    return Number(value).toLocaleString(cfg.lang === "vi" ? "vi-VN" : "en-GB",
      { maximumFractionDigits: digits === undefined ? 0 : digits });
  }

  function when(iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleString(cfg.lang === "vi" ? "vi-VN" : "en-GB",
      { dateStyle: "short", timeStyle: "short" });
  }

  /* ---- the API ---- */

  /* One API call, in the page's language; the answer is recorded for the panel and tests. */
  async function call(method, path, options) {
    const opts = options || {};
    const headers = { "Accept-Language": cfg.lang };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    if (opts.etag) headers["If-Match"] = opts.etag;
    let body;
    if (opts.text !== undefined) {
      headers["Content-Type"] = "text/csv; charset=utf-8";
      body = opts.text;
    } else if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body });
    } catch (err) {
      return record(method, path, { ok: false, status: 0, body: { detail: String(err) }, etag: null });
    }
    const text = await response.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (err) { parsed = { detail: text }; }
    return record(method, path, { ok: response.ok, status: response.status, body: parsed,
                                  etag: response.headers.get("ETag") });
  }

  function record(method, path, result) {
    window.eaEditor.lastResult = result;
    if (method !== "GET") window.eaEditor.writes.push({ method, path, status: result.status, body: result.body });
    return result;
  }

  /* ---- dialogs: every destructive or bulk action asks first ---- */

  function dialog(build) {
    return new Promise((resolve) => {
      const back = L.DomUtil.create("div", "ea-modal-back", document.body);
      const box = L.DomUtil.create("div", "ea-modal", back);
      box.setAttribute("role", "dialog");
      box.setAttribute("aria-modal", "true");
      const finish = (value) => {
        document.removeEventListener("keydown", onKey, true);
        back.remove();
        resolve(value);
      };
      const onKey = (e) => {
        if (e.key === "Escape") { e.preventDefault(); finish(null); }
      };
      document.addEventListener("keydown", onKey, true);
      L.DomEvent.disableClickPropagation(back);
      build(box, finish);
    });
  }

  function buttons(box, okLabel, danger, onOk, finish) {
    const row = L.DomUtil.create("div", "ea-modal-buttons", box);
    const cancel = L.DomUtil.create("button", "ea-confirm-cancel", row);
    cancel.textContent = t("cancel");
    cancel.addEventListener("click", () => finish(null));
    const ok = L.DomUtil.create("button", "ea-confirm-ok" + (danger ? " ea-danger" : ""), row);
    ok.textContent = okLabel || t("ok");
    ok.addEventListener("click", onOk);
    return { ok, cancel };
  }

  /* Resolves true when the user confirms, false when they cancel. */
  async function confirmAction(text, okLabel, danger) {
    const answer = await dialog((box, finish) => {
      const p = L.DomUtil.create("p", "ea-confirm-text", box);
      p.textContent = text;
      const { cancel } = buttons(box, okLabel, danger, () => finish(true), finish);
      cancel.focus();  // (Enter on a stray keypress must not destroy anything)
    });
    return answer === true;
  }

  /* Resolves the reason typed, or null. */
  function askReason(title) {
    return dialog((box, finish) => {
      const p = L.DomUtil.create("p", "", box);
      p.textContent = title;
      const label = L.DomUtil.create("label", "", box);
      label.textContent = t("reject_reason");
      const area = L.DomUtil.create("textarea", "ea-reason-input", box);
      area.name = "reason";
      const { ok } = buttons(box, t("reject"), true, () => {
        if (area.value.trim()) finish(area.value.trim());
      }, finish);
      ok.disabled = true;
      area.addEventListener("input", () => { ok.disabled = !area.value.trim(); });
      area.focus();
    });
  }

  /* ---- the map layers ---- */

  function statusStyle(status, selected, neighbour) {
    return { color: selected ? "#08306b" : status === "rejected" ? "#a50f15" : "#333",
             weight: selected ? 3 : status === "rejected" ? 2 : 1,
             dashArray: neighbour ? "6 4" : null,
             fill: true, fillColor: cfg.statusColours[status] || "#ccc",
             fillOpacity: selected ? 0.4 : neighbour ? 0.25 : 0.1 };
  }

  /* The viewer's base maps, imagery and overlays (its own module and layer list, without the
     viewer's orientation map), and the lines EA boundaries follow; the choice is kept in the
     URL (base=, layers=) like the viewer's. */
  function addBaseLayers() {
    addPanes(map);
    const params = new URLSearchParams(window.location.search);
    const bases = (cfg.basemaps || []).filter((e) => !e.overlay && e.available);
    const app = {
      cfg, map, i18n: createI18n(cfg.baseTexts || {}, cfg.lang), api: createApi(API, cfg.lang),
      // (the first base map the operator configured is shown unless the URL says otherwise)
      state: { base: params.get("base") || (bases.length ? bases[0].id : null), layers: params.get("layers") || "" },
    };
    app.layerOn = (name) => app.state.layers.split(",").includes(name);
    app.toggleLayer = (name, on) => {
      const layers = new Set(app.state.layers.split(",").filter(Boolean));
      if (on) layers.add(name); else layers.delete(name);
      app.state = { ...app.state, layers: [...layers].join(",") };
      app.base.update();
      app.writeUrl();
    };
    app.writeUrl = () => {
      const url = new URL(window.location.href);
      for (const key of ["base", "layers"]) {
        if (app.state[key]) url.searchParams.set(key, app.state[key]); else url.searchParams.delete(key);
      }
      window.history.replaceState(null, "", url.toString());
    };
    app.base = createBaseLayers(app, { builtIn: false });
    app.base.update();
    state.baseLayers = app.base;
    state.linesLayer = L.geoJSON(null, { interactive: false,
      style: (f) => ({ color: f.properties.kind === "railway" ? "#4d4d4d" : f.properties.kind === "river" ? "#2171b5" : "#d95f0e",
                       weight: f.properties.kind === "railway" ? 3 : 4, opacity: 0.8,
                       dashArray: f.properties.kind === "railway" ? "8 4" : null }) }).addTo(map);
    // one folding layer list: the viewer's bases and overlays, then the loaded lines
    const control = L.control({ position: "bottomleft" });
    control.onAdd = () => {
      const box = L.DomUtil.create("details", "gv-controls ea-layers");
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      const summary = L.DomUtil.create("summary", "", box);
      summary.textContent = app.i18n.t("layers");
      box.appendChild(app.base.controls());
      const label = L.DomUtil.create("label", "gv-check ea-lines-toggle", box);
      const input = L.DomUtil.create("input", "", label);
      input.type = "checkbox";
      input.name = "layer-ea-lines";
      input.checked = true;
      input.addEventListener("change", () => {
        if (input.checked) state.linesLayer.addTo(map); else map.removeLayer(state.linesLayer);
      });
      label.appendChild(document.createTextNode(" " + t("lines_layer")));
      // open on a wide screen, folded on a small one (the map comes first there)
      box.open = window.innerWidth >= 1100;
      return box;
    };
    control.addTo(map);
  }

  function addTiles() {
    const url = cfg.api + "/collections/enumeration-areas/tiles/WebMercatorQuad/{z}/{x}/{y}?round=" +
      cfg.round;
    tiles = L.vectorGrid.protobuf(url, {
      rendererFactory: L.svg.tile, interactive: false, maxNativeZoom: 18,
      // (no EA tiles exist further out: the layer asks for none there)
      minZoom: cfg.eaTilesMinZoom,
      // (with private reads the service wants the token for EA tiles too)
      fetchOptions: state.token ? { headers: { Authorization: "Bearer " + state.token } } : {},
      vectorTileLayerStyles: {
        "enumeration-areas": (props) => {
          if (props.code) tileCodes.add(props.code);  // (tiles up to z8 carry the status only)
          return { fill: true, fillColor: cfg.statusColours[props.status] || "#ccc",
                   fillOpacity: 0.45, color: "#555", weight: 0.6 };
        },
      },
    }).addTo(map);
    tiles.on("load", () => { window.eaEditor.tileLoads += 1; });
  }

  /* Below the EA tiles' minimum zoom the layer is empty: a note says why, and what to do. */
  function addZoomNote() {
    // (top left, under the drawing tools: the top right is under the panel on a desktop)
    const note = L.control({ position: "topleft" });
    note.onAdd = () => {
      const box = L.DomUtil.create("div", "ea-zoom-note");
      box.setAttribute("role", "status");
      box.textContent = t("zoom_for_eas");
      return box;
    };
    note.addTo(map);
    const show = () => { note.getContainer().hidden = map.getZoom() >= cfg.eaTilesMinZoom; };
    map.on("zoomend", show);
    show();
  }

  async function addCommuneOutline() {
    const url = cfg.api + "/collections/commune-" + cfg.vintage + "/items/" + cfg.commune.code;
    const result = await call("GET", url);
    if (!result.ok) return;
    L.geoJSON(result.body, { interactive: false,
      style: { color: "#000", weight: 2.5, dashArray: "6 4", fill: false } }).addTo(map);
  }

  async function loadLines() {
    const result = await call("GET", cfg.api + "/communes/" + cfg.commune.code + "/lines?round=" + cfg.round);
    if (result.ok && state.linesLayer) state.linesLayer.addData(result.body);
  }

  /* An EA as one Leaflet polygon (single-part EAs as a Polygon, so it can be edited). */
  function polygonOf(feature) {
    let geometry = feature.geometry;
    if (geometry.type === "MultiPolygon" && geometry.coordinates.length === 1) {
      geometry = { type: "Polygon", coordinates: geometry.coordinates[0] };
    }
    const layer = L.geoJSON({ type: "Feature", geometry, properties: {} }).getLayers()[0];
    layer.eaId = feature.id;
    layer.setStyle(statusStyle(feature.properties.status, false, false));
    // (before the tooltip's own handlers, which place it on these events)
    layer.on("mouseover mousemove", tooltipAwayFromPanel);
    layer.bindTooltip(() => {
      const p = feature.properties;
      let text = p.code + " · " + t("status_" + p.status) + " · " + fmt(p.households) + " " + t("households_after_number");
      if (p.rejection_reason) text += " · " + t("rejected_because", { reason: p.rejection_reason });
      return escape(text);
    }, { sticky: true });
    layer.on("click", (e) => {
      L.DomEvent.stopPropagation(e);
      if (state.editing !== null) return;  // (a tap while reshaping must not change the EA)
      const add = state.multi || (e.originalEvent && e.originalEvent.shiftKey);
      select(feature.id, add);
    });
    // two taps on EAs within 200 ms (picking several) make Leaflet's double tap: selection
    // taps never zoom the map
    layer.on("dblclick", (e) => L.DomEvent.stop(e));
    return layer;
  }

  async function loadEas() {
    const url = ITEMS + "?limit=10000&round=" + cfg.round + "&commune=" + cfg.commune.code;
    const result = await call("GET", url);
    if (!result.ok) { showError(result); return; }
    editable.clearLayers();
    state.eas = {};
    for (const feature of result.body.features) {
      const layer = polygonOf(feature);
      editable.addLayer(layer);
      state.eas[feature.id] = { feature, layer, etag: '"ea-' + feature.id + "-v" + feature.properties.version + '"' };
    }
    state.selected = state.selected.filter((id) => state.eas[id]);
    if (state.editing !== null && !state.eas[state.editing]) state.editing = null;
    restyle();
  }

  async function loadCoverage() {
    const url = cfg.api + "/communes/" + cfg.commune.code + "/ea-coverage?round=" + cfg.round +
      "&vintage=" + cfg.vintage;
    const result = await call("GET", url);
    if (!result.ok) { showError(result); return; }
    state.coverage = result.body;
    window.eaEditor.coverage = result.body;
    gaps.clearLayers();
    for (const gap of result.body.gaps) {
      const layer = L.geoJSON(gap.geometry, { style: { color: "#c0392b", weight: 2, fillColor: "#c0392b",
                                                        fillOpacity: 0.45, dashArray: "3 3" } });
      layer.eachLayer((l) => l.bindPopup(() => gapPopup(gap)));
      gaps.addLayer(layer);
    }
    for (const overlap of result.body.overlaps) {
      marker(overlap.location.coordinates, t("overlaps") + ": " + overlap.eas.join(" / ") + " (" +
        fmt(overlap.area_m2) + " m²)", "#8e44ad", gaps);
    }
  }

  async function loadLineShare() {
    const result = await call("GET", cfg.api + "/communes/" + cfg.commune.code + "/ea-lines?round=" + cfg.round);
    state.lines = result.ok ? result.body : null;
  }

  function gapPopup(gap) {
    const div = L.DomUtil.create("div", "ea-gap");
    div.innerHTML = "<b>" + escape(t("gaps")) + "</b>: " + escape(fmt(gap.area_m2)) + " m²<br>";
    if (canEdit()) {
      const button = L.DomUtil.create("button", "ea-gap-to-ea", div);
      button.textContent = t("gap_to_ea");
      button.addEventListener("click", () => { map.closePopup(); createEa(gap.geometry); });
    }
    return div;
  }

  function marker(lonlat, text, colour, group) {
    L.circleMarker([lonlat[1], lonlat[0]], { radius: 9, color: colour, weight: 3, fillOpacity: 0.3 })
      .bindTooltip(escape(text), { permanent: false }).addTo(group || findings);
  }

  async function reload() {
    const loads = [loadEas(), loadCoverage(), loadLineShare()];
    if (state.tab === "organise") loads.push(loadOrganisation());
    if (state.tab === "review") loads.push(loadReview());
    await Promise.all(loads);
    if (tiles) {
      tileCodes.clear();
      tiles.redraw();
    }
    render();
  }

  /* ---- selection: one EA, or several (a tap adds or removes) ---- */

  function select(id, add) {
    if (add) {
      state.selected = state.selected.includes(id) ? state.selected.filter((s) => s !== id)
        : state.selected.concat([id]);
    } else {
      state.selected = state.selected.length === 1 && state.selected[0] === id ? [] : [id];
    }
    state.history = null;
    restyle();
    render();
  }

  /* EAs sharing an edge (two vertices) with a selected EA: the ones a merge can take. */
  function neighbours() {
    if (!state.selected.length) return new Set();
    const owners = new Map();
    const key = (ll) => ll.lat.toFixed(7) + "," + ll.lng.toFixed(7);
    for (const [id, ea] of Object.entries(state.eas)) {
      for (const ll of flat(ea.layer.getLatLngs())) {
        const k = key(ll);
        if (!owners.has(k)) owners.set(k, new Set());
        owners.get(k).add(Number(id));
      }
    }
    const shared = new Map();
    for (const ids of owners.values()) {
      if (!state.selected.some((s) => ids.has(s))) continue;
      for (const id of ids) if (!state.selected.includes(id)) shared.set(id, (shared.get(id) || 0) + 1);
    }
    return new Set([...shared.entries()].filter(([, n]) => n >= 2).map(([id]) => id));
  }

  function flat(latlngs) {
    return Array.isArray(latlngs) ? latlngs.flatMap(flat) : [latlngs];
  }

  function restyle() {
    const near = state.multi ? neighbours() : new Set();
    for (const [id, ea] of Object.entries(state.eas)) {
      const n = Number(id);
      ea.layer.setStyle(statusStyle(ea.feature.properties.status, state.selected.includes(n), near.has(n)));
    }
    window.eaEditor.neighbourIds = [...near];
    organiser.update();
  }

  /* ---- writes ---- */

  // As the API decides: the role, and a scope naming the commune or its province.
  function inScope() {
    const user = state.user;
    if (!user || !cfg.commune || user.role === "admin") return Boolean(user);
    return user.scope.includes(cfg.commune.code) || user.scope.includes(cfg.commune.province);
  }
  function canEdit() { return inScope() && RANK[state.user.role] >= RANK.editor; }
  function canApprove() { return inScope() && RANK[state.user.role] >= RANK.supervisor; }

  async function afterWrite(result, successText) {
    findings.clearLayers();
    if (result.ok) {
      showMessage(successText || t("saved"), warningsOf(result.body), "ok");
    } else {
      showError(result);
    }
    await reload();
    // (every write so far has been answered and the map and panel show what followed it)
    window.eaEditor.settled = window.eaEditor.writes.length;
  }

  function warningsOf(body) {
    const list = (body && body.warnings) || [];
    return list.map((w) => w.warning || w.notice || JSON.stringify(w));
  }

  function codeOf(id) {
    return state.eas[id] ? state.eas[id].feature.properties.code : String(id);
  }

  async function createEa(geometry) {
    const feature = { type: "Feature", geometry,
      properties: { census_round: cfg.round, commune_code: cfg.commune.code,
                    commune_vintage: cfg.vintage } };
    const result = await call("POST", ITEMS, { body: feature });
    await afterWrite(result);
    if (!result.ok) showDrawn(geometry);
    return result;
  }

  function showDrawn(geometry) {
    L.geoJSON(geometry, { interactive: false,
      style: { color: "#c0392b", weight: 2, dashArray: "5 5", fill: false } }).addTo(findings);
  }

  /* Delete an EA (asked first by the caller); where its area would be a gap in a covered
     commune, the neighbours along it are offered to take it, and nothing is deleted unless
     one is chosen. */
  async function deleteEa(id) {
    const url = ITEMS + "/" + id;
    const result = await call("DELETE", url, { etag: state.eas[id].etag });
    if (result.ok || result.status !== 422 || !result.body || !result.body.gaps) return result;
    const receiver = await askGapReceiver(result.body.gaps, id, "gap_left_delete");
    const taker = receiver && Object.values(state.eas).find((ea) => ea.feature.properties.code === receiver);
    if (!taker) { result.cancelled = true; return result; }
    return call("DELETE", url + "?give_gap_to=" + encodeURIComponent(receiver),
                { etag: state.eas[id].etag + ", " + taker.etag });
  }

  async function transition(id, action, reason) {
    const query = reason ? "?reason=" + encodeURIComponent(reason) : "";
    return call("POST", ITEMS + "/" + id + "/" + action + query, { etag: state.eas[id].etag });
  }

  async function splitSelected(line) {
    const id = state.selected[0];
    return call("POST", ITEMS + "/" + id + "/split", { body: { line, reason: t("split") },
                                                       etag: state.eas[id].etag });
  }

  async function mergeSelected() {
    const ids = state.selected.slice();
    if (ids.length < 2) return;
    const codes = ids.map(codeOf).join(", ");
    if (!await confirmAction(t("confirm_merge", { count: ids.length, codes }), t("merge_n", { count: ids.length }))) return;
    const etags = ids.map((id) => state.eas[id].etag).join(", ");
    const result = await call("POST", cfg.api + "/collections/enumeration-areas/merge",
                              { body: { ids, reason: t("merged") }, etag: etags });
    if (result.ok) state.selected = [result.body.id];
    await afterWrite(result, result.ok ? t("merged") : null);
  }

  async function generate() {
    const drafts = Object.values(state.eas).filter((ea) => ea.feature.properties.status === "draft").length;
    const replace = Object.keys(state.eas).length > 0;
    const text = replace ? t("confirm_regenerate", { count: drafts }) : t("confirm_generate");
    if (!await confirmAction(text, t(replace ? "regenerate" : "generate"), replace)) return;
    const url = cfg.api + "/communes/" + cfg.commune.code + "/ea-generate?round=" + cfg.round +
      "&vintage=" + cfg.vintage + (replace ? "&replace=true" : "");
    const result = await call("POST", url);
    state.selected = [];
    await afterWrite(result, result.ok ? t("generated", { count: result.body.created }) : null);
  }

  async function transitionAll(fromStatuses, action, confirmKey) {
    const targets = Object.entries(state.eas).filter(([, ea]) => fromStatuses.includes(ea.feature.properties.status));
    if (!targets.length) { showMessage(t("nothing_to"), [], "error"); return; }
    const codes = targets.map(([, ea]) => ea.feature.properties.code);
    const shown = codes.length > 12 ? codes.slice(0, 12).join(", ") + " …" : codes.join(", ");
    if (!await confirmAction(t(confirmKey, { count: codes.length, codes: shown }), t(action === "approve" ? "approve_all" : "submit_all"))) return;
    let last = null;
    let done = 0;
    for (const [id] of targets) {
      last = await transition(Number(id), action);
      if (!last.ok) break;
      done += 1;
    }
    if (last) await afterWrite(last, last.ok ? t("saved_n", { count: done }) : null);
  }

  /* The commune's area in no EA (from the coverage report), or null when it is covered. */
  function uncovered() {
    const c = state.coverage;
    if (!c || !c.gaps.length) return null;
    return { area: fmt(c.gaps.reduce((sum, g) => sum + g.area_m2, 0)), share: fmt(c.gap_share * 100, 2) };
  }

  /* Where the commune is not covered: each gap ringed on the map, brought into view. */
  function showUncovered() {
    findings.clearLayers();
    for (const gap of state.coverage.gaps) {
      const centre = L.geoJSON(gap.geometry).getBounds().getCenter();
      marker([centre.lng, centre.lat], t("gaps") + ": " + fmt(gap.area_m2) + " m²", "#c0392b");
    }
    const bounds = gaps.getBounds();
    if (bounds.isValid() && !map.getBounds().contains(bounds)) map.fitBounds(bounds, { maxZoom: map.getZoom() });
  }

  /* Approve every submitted EA in one request (all or none); over a commune that is not
     fully covered only once the supervisor has seen where and said so. */
  async function approveAll() {
    const targets = Object.values(state.eas).filter((ea) => ea.feature.properties.status === "submitted");
    if (!targets.length) { showMessage(t("nothing_to"), [], "error"); return; }
    const codes = targets.map((ea) => ea.feature.properties.code);
    const shown = codes.length > 12 ? codes.slice(0, 12).join(", ") + " …" : codes.join(", ");
    const gap = uncovered();
    if (gap) showUncovered();
    const text = gap ? t("confirm_approve_uncovered", { ...gap, count: codes.length, codes: shown })
      : t("confirm_approve_all", { count: codes.length, codes: shown });
    if (!await confirmAction(text, t(gap ? "approve_anyway" : "approve_all"), Boolean(gap))) return;
    const url = cfg.api + "/communes/" + cfg.commune.code + "/ea-approve?round=" + cfg.round + "&vintage=" + cfg.vintage;
    const result = await call("POST", url, { body: { uncovered_acknowledged: Boolean(gap) },
                                             etag: targets.map((ea) => ea.etag).join(", ") });
    await afterWrite(result, result.ok ? t("saved_n", { count: result.body.features.length }) : null);
  }

  /* Approve one EA; over a commune that is not fully covered, after a warning (null when
     the supervisor cancels), the history saying so. */
  async function approveOne(id) {
    const gap = uncovered();
    if (!gap) return transition(id, "approve");
    showUncovered();
    const text = t("confirm_approve_one_uncovered", { ...gap, code: codeOf(id) });
    if (!await confirmAction(text, t("approve_anyway"), true)) return null;
    return transition(id, "approve", t("uncovered_note", gap));
  }

  async function runOnSelected(action) {
    const id = state.selected[0];
    if (id === undefined) return;
    const code = codeOf(id);
    let result;
    if (action === "delete") {
      if (!await confirmAction(t("confirm_delete_ea", { code }), t("delete"), true)) return;
      result = await deleteEa(id);
      if (result.ok) state.selected = [];
    } else if (action === "reject") {
      const reason = await askReason(t("reject_title", { code }));
      if (!reason) return;
      result = await transition(id, action, reason);
    } else if (action === "approve") {
      result = await approveOne(id);
      if (!result) return;
    } else {
      result = await transition(id, action);
    }
    await afterWrite(result);
  }

  /* ---- reshaping one EA at a time ---- */

  function startEditing() {
    const id = state.selected[0];
    if (id === undefined || state.selected.length !== 1) return;
    state.editing = id;
    const layer = state.eas[id].layer;
    state.shared = { was: ringsCopy(layer), touched: new Set() };
    layer.on("edit", moveShared);
    layer.editing.enable();
    render();
  }

  function stopEditing() {
    const id = state.editing;
    state.eas[id].layer.editing.disable();
    state.eas[id].layer.off("edit", moveShared);
    state.editing = null;
    const touched = [...state.shared.touched];
    state.shared = null;
    return [id, ...touched];
  }

  async function saveEditing() {
    if (state.editing === null) return;
    const ids = stopEditing();
    const features = ids.map((id) => ({ type: "Feature", id, geometry: state.eas[id].layer.toGeoJSON(false).geometry,
                                        properties: { reason: t("edit_shape") } }));
    // one EA alone: its own PUT; with the neighbours that share what moved: all at once
    let result = ids.length === 1
      ? await call("PUT", ITEMS + "/" + ids[0], { body: features[0], etag: state.eas[ids[0]].etag })
      : await reshape(features, null);
    if (!result.ok && result.status === 422 && result.body && result.body.gaps) {
      const receiver = await askGapReceiver(result.body.gaps, ids[0]);
      if (receiver) result = await reshape(features, receiver);
    }
    const saved = result.ok && result.body.features ? t("saved_n", { count: result.body.features.length }) : null;
    await afterWrite(result, saved);
    if (!result.ok) features.forEach((f) => showDrawn(f.geometry));
  }

  /* Several EAs' shapes in one transaction (each with its ETag); `receiver`: the EA code
     that takes any gap the change opens. */
  function reshape(features, receiver) {
    const tags = features.map((f) => state.eas[f.id].etag);
    const taker = receiver && Object.values(state.eas).find((ea) => ea.feature.properties.code === receiver);
    if (taker && !features.some((f) => f.id === taker.feature.id)) tags.push(taker.etag);
    const body = { type: "FeatureCollection", reason: t("edit_shape"),
                   features: features.map((f) => ({ type: "Feature", id: f.id, geometry: f.geometry, properties: {} })) };
    if (receiver) body.give_gap_to = receiver;
    return call("POST", cfg.api + "/collections/enumeration-areas/reshape", { body, etag: tags.join(", ") });
  }

  /* A refused save that opens a gap: the gap in red, and a choice of the neighbour to give
     it to (every gap must border it); the code chosen, or null. */
  function askGapReceiver(found, editing, question) {
    findings.clearLayers();
    for (const gap of found) {
      L.geoJSON(gap.geometry, { interactive: false, style: { color: "#c0392b", weight: 3, fillColor: "#c0392b",
                                                              fillOpacity: 0.6 } }).addTo(findings);
      marker(gap.location, t("gaps") + ": " + fmt(gap.area_m2) + " m²", "#c0392b");
    }
    const own = codeOf(editing);
    const candidates = found.map((g) => g.eas.filter((c) => c !== own))
      .reduce((all, some) => all.filter((c) => some.includes(c)))
      .filter((c) => Object.values(state.eas).some((ea) => ea.feature.properties.code === c));
    const area = fmt(found.reduce((sum, g) => sum + g.area_m2, 0));
    return dialog((box, finish) => {
      const p = L.DomUtil.create("p", "ea-confirm-text", box);
      p.textContent = t(question || "gap_left", { area, code: own });
      if (!candidates.length) {
        L.DomUtil.create("p", "ea-hint", box).textContent =
          t(question ? "no_gap_neighbour_delete" : "no_gap_neighbour", { code: own });
        buttons(box, t("ok"), false, () => finish(null), finish).cancel.focus();
        return;
      }
      const select = L.DomUtil.create("select", "ea-gap-receiver", box);
      select.name = "gap_receiver";
      for (const code of candidates) {
        const option = L.DomUtil.create("option", "", select);
        option.value = code;
        option.textContent = code;
      }
      const ok = question ? t("give_and_delete") : t("give_gap");
      const { cancel } = buttons(box, ok, Boolean(question), () => finish(select.value), finish);
      cancel.focus();
    });
  }

  async function cancelEditing() {
    if (state.editing === null) return;
    stopEditing();
    await loadEas();
    render();
  }

  /* ---- shared vertices: a vertex moved (added, removed) in the EA being reshaped is moved
     (added, removed) in every EA that shares it, as topological editing does ---- */

  const SAME = 1e-9;  // degrees (~0.1 mm): one vertex of two EAs

  function same(a, b) { return Math.abs(a.lat - b.lat) < SAME && Math.abs(a.lng - b.lng) < SAME; }

  /* The rings (arrays of LatLngs) of a polygon layer, its own arrays. */
  function ringsOf(latlngs) {
    if (!Array.isArray(latlngs) || !latlngs.length) return [];
    return Array.isArray(latlngs[0]) ? latlngs.flatMap(ringsOf) : [latlngs];
  }

  function ringsCopy(layer) {
    return ringsOf(layer.getLatLngs()).map((ring) => ring.map((ll) => L.latLng(ll.lat, ll.lng)));
  }

  /* Where two rings first differ (the longer one's index). */
  function firstDifference(longer, shorter) {
    let i = 0;
    while (i < shorter.length && same(longer[i], shorter[i])) i += 1;
    return i;
  }

  /* After each drag (or tap that removes a vertex) of the EA being reshaped. */
  function moveShared() {
    const layer = state.eas[state.editing].layer;
    const now = ringsOf(layer.getLatLngs());
    now.forEach((ring, r) => {
      const was = state.shared.was[r];
      if (!was) return;
      const at = (i) => was[(i + was.length) % was.length];
      if (ring.length === was.length) {
        ring.forEach((ll, i) => { if (!same(ll, was[i])) changeOthers((other) => moveVertex(other, was[i], ll)); });
      } else if (ring.length === was.length + 1) {
        const i = firstDifference(ring, was);
        changeOthers((other) => insertVertex(other, at(i - 1), at(i), ring[i]));
      } else if (ring.length === was.length - 1) {
        const i = firstDifference(was, ring);
        changeOthers((other) => removeVertex(other, at(i - 1), at(i), at(i + 1)));
      }
    });
    state.shared.was = ringsCopy(layer);
    window.eaEditor.movedTogether = [...state.shared.touched];
    render();
  }

  /* `change` applied to the rings of every other EA; those it changed are redrawn. */
  function changeOthers(change) {
    for (const [key, ea] of Object.entries(state.eas)) {
      const id = Number(key);
      if (id === state.editing) continue;
      const latlngs = ea.layer.getLatLngs();
      if (ringsOf(latlngs).map(change).some(Boolean)) {
        ea.layer.setLatLngs(latlngs);
        state.shared.touched.add(id);
      }
    }
  }

  function moveVertex(ring, from, to) {
    let moved = false;
    ring.forEach((ll, j) => { if (same(ll, from)) { ring[j] = L.latLng(to.lat, to.lng); moved = true; } });
    return moved;
  }

  /* A vertex put on an edge (a and b) the other EA shares: put there too. */
  function insertVertex(ring, a, b, point) {
    for (let j = 0; j < ring.length; j += 1) {
      const next = ring[(j + 1) % ring.length];
      if ((same(ring[j], a) && same(next, b)) || (same(ring[j], b) && same(next, a))) {
        ring.splice(j + 1, 0, L.latLng(point.lat, point.lng));
        return true;
      }
    }
    return false;
  }

  /* A vertex taken off an edge the other EA shares on both sides: taken off there too. */
  function removeVertex(ring, before, vertex, after) {
    if (ring.length <= 3) return false;
    for (let j = 0; j < ring.length; j += 1) {
      if (!same(ring[j], vertex)) continue;
      const prev = ring[(j - 1 + ring.length) % ring.length];
      const next = ring[(j + 1) % ring.length];
      if ((same(prev, before) && same(next, after)) || (same(prev, after) && same(next, before))) {
        ring.splice(j, 1);
        return true;
      }
    }
    return false;
  }

  /* ---- attributes ---- */

  async function saveAttributes() {
    const id = state.selected[0];
    if (id === undefined) return;
    const value = (name) => panel.querySelector("[name=" + name + "]").value;
    const props = { urban_rural: value("urban_rural") || null,
                    boundary_description: value("boundary_description"),
                    landmarks: value("landmarks"), reason: t("save_attributes") };
    const result = await call("PATCH", ITEMS + "/" + id,
                              { body: { type: "Feature", geometry: null, properties: props }, etag: state.eas[id].etag });
    await afterWrite(result);
  }

  /* ---- history: see and restore an earlier version ---- */

  async function showHistory() {
    const id = state.selected[0];
    const result = await call("GET", ITEMS + "/" + id + "/history");
    if (!result.ok) { showError(result); return; }
    state.history = { id, entries: result.body.history };
    render();
  }

  function previewVersion(entry) {
    overlay.clearLayers();
    const feature = entry.after || entry.before;
    if (!feature || !feature.geometry) return;
    const layer = L.geoJSON(feature.geometry, { interactive: false,
      style: { color: "#6a51a3", weight: 3, dashArray: "4 4", fillColor: "#6a51a3", fillOpacity: 0.15 } });
    overlay.addLayer(layer);
  }

  async function restoreVersion(entryId) {
    const id = state.history.id;
    const entry = state.history.entries.find((e) => e.id === entryId);
    const feature = entry.after || entry.before;
    const version = feature.properties.version || "?";
    if (!await confirmAction(t("confirm_restore", { code: codeOf(id), version, when: when(entry.at) }), t("restore"))) return;
    const url = ITEMS + "/" + id + "/restore?entry=" + entryId;
    let result = await call("POST", url, { etag: state.eas[id].etag });
    // a smaller earlier shape can open a gap: as on a save, offer a neighbour to take it
    if (!result.ok && result.status === 422 && result.body && result.body.gaps) {
      const receiver = await askGapReceiver(result.body.gaps, id);
      const taker = receiver && Object.values(state.eas).find((ea) => ea.feature.properties.code === receiver);
      if (taker) {
        result = await call("POST", url + "&give_gap_to=" + encodeURIComponent(receiver),
                            { etag: state.eas[id].etag + ", " + taker.etag });
      }
    }
    overlay.clearLayers();
    state.history = null;
    await afterWrite(result, result.ok ? t("restored") : null);
  }

  /* ---- census organisation ---- */

  let organising = 0;  // (loads under way: a test knows when the page holds the areas' ETag)

  async function loadOrganisation() {
    const base = cfg.api + "/communes/" + cfg.commune.code;
    organising += 1;
    const [areas, staff, workload] = await Promise.all([
      call("GET", base + "/supervisor-areas?round=" + cfg.round),
      call("GET", cfg.api + "/census/" + cfg.round + "/staff?scope=" + cfg.commune.code),
      call("GET", base + "/workload?round=" + cfg.round),
    ]).finally(() => { organising -= 1; });
    state.areas = areas.ok ? areas.body : null;
    state.staff = staff.ok ? staff.body.staff : [];
    state.workload = workload.ok ? workload.body : null;
  }

  async function makeArea() {
    const codes = state.selected.map(codeOf);
    const supervisor = panel.querySelector("select[name=area_supervisor]").value || null;
    // (the areas as this page read them: a colleague's change since is refused, never lost)
    const result = await call("POST", cfg.api + "/communes/" + cfg.commune.code + "/supervisor-areas?round=" + cfg.round,
                              { body: { eas: codes, supervisor }, etag: areasEtag() });
    if (result.ok) state.selected = [];
    await afterAreaWrite(result);
  }

  async function deleteArea(areaId, code) {
    if (!await confirmAction(t("confirm_delete_area", { code }), t("delete_area"), true)) return;
    const result = await call("DELETE", cfg.api + "/communes/" + cfg.commune.code + "/supervisor-areas/" + areaId,
                              { etag: areasEtag() });
    await afterAreaWrite(result);
  }

  function areasEtag() { return state.areas ? state.areas.etag : null; }

  /* The selected EAs that are in a supervisor area already, each with the area's code. */
  function selectedInAreas() {
    if (!state.areas) return [];
    const codes = new Set(state.selected.map(codeOf));
    return state.areas.areas.flatMap((a) => a.eas.filter((c) => codes.has(c)).map((c) => ({ ea: c, area: a.code })));
  }

  function areaById(areaId) { return state.areas ? state.areas.areas.find((a) => a.id === areaId) : null; }

  /* An area's EAs selected and brought into view: where it is, and ready for an enumerator. */
  function showArea(areaId) {
    const area = areaById(areaId);
    if (!area) return;
    const ids = Object.values(state.eas).filter((ea) => area.eas.includes(ea.feature.properties.code)).map((ea) => ea.feature.id);
    state.selected = ids;
    state.history = null;
    restyle();
    render();
    const bounds = L.latLngBounds([]);
    ids.forEach((id) => bounds.extend(state.eas[id].layer.getBounds()));
    if (bounds.isValid()) map.fitBounds(bounds, { maxZoom: Math.max(map.getZoom(), 16), ...besidePanel() });
  }

  async function setAreaSupervisor(areaId, supervisor) {
    const area = areaById(areaId);
    if (!area) return;
    const result = await call("PUT", cfg.api + "/communes/" + cfg.commune.code + "/supervisor-areas/" + areaId + "?round=" + cfg.round,
                              { body: { eas: area.eas, supervisor }, etag: areasEtag() });
    await afterAreaWrite(result);
  }

  /* A single area's write answered: on a 412 the areas are reloaded (as after every write,
     the selection kept) and the message says so: try again on what holds now. */
  async function afterAreaWrite(result) {
    result.areasReloaded = result.status === 412;
    await afterWrite(result);
  }

  async function assignSelected() {
    const enumerator = panel.querySelector("select[name=enumerator]").value || null;
    const assignments = state.selected.map((id) => ({ ea: codeOf(id), enumerator }));
    const result = await call("PUT", cfg.api + "/communes/" + cfg.commune.code + "/assignments?round=" + cfg.round,
                              { body: { assignments } });
    await afterWrite(result);
  }

  async function addStaff() {
    const value = (name) => panel.querySelector("[name=" + name + "]").value.trim();
    const body = { code: value("staff_code"), name: value("staff_name"), role: value("staff_role"),
                   scope: cfg.commune.code, phone: value("staff_phone") || null };
    const result = await call("POST", cfg.api + "/census/" + cfg.round + "/staff", { body });
    if (result.ok) panel.querySelectorAll(".ea-staff-form input").forEach((i) => { i.value = ""; });
    await afterWrite(result);
  }

  async function removeStaff(code, name) {
    if (!await confirmAction(t("confirm_remove_staff", { code, name }), t("remove"), true)) return;
    const result = await call("DELETE", cfg.api + "/census/" + cfg.round + "/staff/" + encodeURIComponent(code));
    await afterWrite(result);
  }

  async function uploadListing() {
    const input = panel.querySelector("input[name=listing]");
    if (!input.files.length) return;
    const text = await input.files[0].text();
    const result = await call("POST", cfg.api + "/census/" + cfg.round + "/listing", { text });
    await afterWrite(result, result.ok ? result.body.message : null);
  }

  /* ---- the review queue ---- */

  async function loadReview() {
    const [here, scope] = await Promise.all([
      call("GET", cfg.api + "/census/" + cfg.round + "/review?scope=" + cfg.commune.code),
      call("GET", cfg.api + "/census/" + cfg.round + "/review?limit=1"),
    ]);
    state.review = here.ok ? { submitted: here.body.submitted, counts: scope.ok ? scope.body.counts : here.body.counts } : null;
    window.eaEditor.queue = state.review ? state.review.submitted.map((e) => e.code) : [];
    if (state.review && state.reviewFocus >= state.review.submitted.length) state.reviewFocus = 0;
    showReviewChange();
  }

  function showReviewChange() {
    overlay.clearLayers();
    if (state.tab !== "review" || !state.review || !state.review.submitted.length) return;
    const entry = state.review.submitted[state.reviewFocus];
    if (entry.removed) overlay.addLayer(L.geoJSON(entry.removed, { interactive: false,
      style: { color: "#a50f15", weight: 2, dashArray: "3 3", fillColor: "#de2d26", fillOpacity: 0.45 } }));
    if (entry.added) overlay.addLayer(L.geoJSON(entry.added, { interactive: false,
      style: { color: "#006d2c", weight: 2, fillColor: "#31a354", fillOpacity: 0.5 } }));
    overlay.addLayer(L.geoJSON(entry.geometry, { interactive: false,
      style: { color: "#08306b", weight: 3, fill: false } }));
    if (state.eas[entry.id]) {
      state.selected = [entry.id];
      restyle();
    }
  }

  async function reviewAction(action) {
    if (!state.review || !state.review.submitted.length) return;
    const entry = state.review.submitted[state.reviewFocus];
    if (!state.eas[entry.id]) return;
    if (action === "reject") {
      const reason = await askReason(t("reject_title", { code: entry.code }));
      if (!reason) return;
      await afterWrite(await transition(entry.id, "reject", reason));
    } else {
      const result = await approveOne(entry.id);
      if (result) await afterWrite(result);
    }
  }

  document.addEventListener("keydown", (e) => {
    if (state.tab !== "review" || !state.review || document.querySelector(".ea-modal")) return;
    const tag = (document.activeElement && document.activeElement.tagName) || "";
    if (["INPUT", "TEXTAREA", "SELECT"].includes(tag)) return;
    const count = state.review.submitted.length;
    if (!count) return;
    if (e.key === "ArrowDown" || e.key === "j") { state.reviewFocus = (state.reviewFocus + 1) % count; }
    else if (e.key === "ArrowUp" || e.key === "k") { state.reviewFocus = (state.reviewFocus - 1 + count) % count; }
    else if ((e.key === "a" || e.key === "A") && canApprove()) { e.preventDefault(); reviewAction("approve"); return; }
    else if ((e.key === "r" || e.key === "R") && canApprove()) { e.preventDefault(); reviewAction("reject"); return; }
    else return;
    e.preventDefault();
    showReviewChange();
    render();
  });

  /* ---- Leaflet.draw: new EAs and cutting lines (reshaping is one EA at a time, above) ---- */

  function localiseDraw() {
    const merge = (target, source) => {
      for (const [key, value] of Object.entries(source || {})) {
        if (value && typeof value === "object") merge(target[key] = target[key] || {}, value);
        else target[key] = value;
      }
    };
    merge(L.drawLocal, cfg.drawTexts);
  }

  function addDrawTools() {
    if (state.drawControl) return;
    state.drawControl = new L.Control.Draw({
      position: "topleft",
      draw: { polyline: { shapeOptions: { color: "#c0392b", weight: 3 } },
              polygon: { allowIntersection: false, showArea: true,
                         shapeOptions: { color: "#08306b", weight: 2 } },
              rectangle: false, circle: false, marker: false, circlemarker: false },
      edit: false,
    });
    map.addControl(state.drawControl);
  }

  function removeDrawTools() {
    if (state.drawControl) map.removeControl(state.drawControl);
    state.drawControl = null;
  }

  map.on(L.Draw.Event.CREATED, async (e) => {
    const geometry = e.layer.toGeoJSON(false).geometry;
    if (e.layerType === "polyline") {
      if (state.selected.length !== 1) { showMessage(t("draw_split"), [], "error"); return; }
      await afterWrite(await splitSelected(geometry));
    } else {
      await createEa(geometry);
    }
  });

  /* ---- messages ---- */

  /* A refusal with every problem listed (and marked on the map); `title` says what did
     not happen ("not saved" unless given). */
  function showError(result, title) {
    const body = result.body || {};
    const lines = [];
    for (const problem of body.problems || body.errors || []) {
      lines.push(problem.problem + (problem.area_m2 ? " (" + fmt(problem.area_m2) + " m²)" : ""));
      if (problem.location) marker(problem.location, problem.problem, "#c0392b");
    }
    for (const gap of body.gaps || []) {
      L.geoJSON(gap.geometry, { interactive: false, style: { color: "#c0392b", weight: 3, fillColor: "#c0392b",
                                                              fillOpacity: 0.6 } }).addTo(findings);
      marker(gap.location, t("gaps") + ": " + fmt(gap.area_m2) + " m²", "#c0392b");
    }
    // (supervisor areas say themselves what changed; "stale" speaks of an EA)
    if (result.status === 412 && !body.areas) lines.push(t("stale"));
    if (result.status === 412 && result.areasReloaded) lines.push(t("areas_reloaded"));
    showMessage((title || t("not_saved")) + ": " + (body.detail || result.status), lines, "error");
  }

  function showMessage(title, lines, kind) {
    state.message = { title, lines, kind };
    const box = panel && panel.querySelector(".ea-message");
    if (box) box.outerHTML = messageHtml();
  }

  function messageHtml() {
    const m = state.message;
    if (!m) return "<div class='ea-message' role='status'></div>";
    return "<div class='ea-message ea-" + m.kind + "' role='status'><b>" + escape(m.title) + "</b>" +
      (m.lines.length ? "<ul>" + m.lines.map((l) => "<li>" + escape(l) + "</li>").join("") + "</ul>" : "") +
      "</div>";
  }

  /* ---- the panel ---- */

  function button(action, label, extra) {
    return "<button type='button' class='ea-" + action + (extra ? " " + extra : "") + "' data-action='" + action + "'>" +
      escape(label || t(action)) + "</button>";
  }

  function signInHtml() {
    if (state.user) {
      const role = t("role_" + state.user.role);
      return "<div class='ea-user'>" + t("signed_in_as") + ": <b>" + escape(state.user.name) + "</b> (" +
        escape(role) + (state.user.scope.length ? ", " + escape(state.user.scope.join(", ")) : "") +
        ") " + button("sign_out") + "</div>";
    }
    return "<div class='ea-signin'><input name='username' autocomplete='username' placeholder='" + escape(t("name")) +
      "' aria-label='" + escape(t("name")) + "'><input type='password' name='password' autocomplete='current-password' placeholder='" +
      escape(t("password")) + "' aria-label='" + escape(t("password")) + "'>" + button("sign_in", null, "ea-primary") + "</div>" +
      "<details class='ea-token'><summary>" + escape(t("with_token")) + "</summary><div><input type='password' name='token' autocomplete='off' placeholder='" +
      escape(t("token")) + "'>" + button("token_sign_in") + "</div></details>" +
      "<div class='ea-hint'>" + escape(t("not_signed_in")) + "</div>";
  }

  function tabsHtml() {
    const tabs = ["eas", "organise"].concat(state.user && RANK[state.user.role] >= RANK.supervisor ? ["review"] : []);
    return "<div class='ea-tabs' role='tablist'>" + tabs.map((tab) =>
      "<button type='button' role='tab' class='ea-tab-" + tab + "' data-tab='" + tab + "' aria-selected='" +
      (state.tab === tab) + "'>" + escape(t("tab_" + tab)) + "</button>").join("") + "</div>";
  }

  function coverageHtml() {
    const c = state.coverage;
    if (!c) return "";
    const row = (label, value, cls) => "<tr class='" + cls + "'><td>" + escape(label) + "</td><td class='num'>" + escape(value) + "</td></tr>";
    let lines = "";
    if (state.lines && state.lines.share !== null && state.lines.share !== undefined) {
      lines = row(t("lines_share"), fmt(state.lines.share * 100, 1) + " %", "ea-line-share");
    }
    return "<h4>" + escape(t("coverage")) + " <span class='ea-badge " + (c.complete ? "ea-complete'>" + escape(t("complete"))
      : "ea-incomplete'>" + escape(t("incomplete"))) + "</span></h4><table class='ea-coverage'>" +
      row(t("eas"), String(c.eas), "ea-count") +
      row(t("gaps"), c.gaps.length + " (" + fmt(c.gap_share * 100, 2) + " %)", "ea-gaps") +
      row(t("overlaps"), String(c.overlaps.length), "ea-overlaps") +
      row(t("outside"), String(c.outside_commune.length), "ea-outside") +
      row(t("workload") + " " + cfg.householdsBand.join("–"), String(c.outside_workload_band.length), "ea-workload") +
      lines + "</table>" + legendHtml() + downloadsHtml();
  }

  /* The commune's EAs as files (CAPI systems, QGIS) and its map book; fetched with the
     user's token, so they work where reads need one. */
  function downloadsHtml() {
    const link = (format, label) => "<button type='button' class='ea-download-" + format +
      "' data-action='download_" + format + "'>" + escape(label) + "</button>";
    return "<h4>" + escape(t("downloads_title")) + "</h4><div class='ea-actions ea-downloads'>" +
      link("gpkg", "GeoPackage") + link("shp", "Shapefile (zip)") + link("geojson", "GeoJSON") +
      link("csv", "CSV") + button("map_book") + "</div>";
  }

  async function saveFile(path, name) {
    const headers = { "Accept-Language": cfg.lang };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    const response = await fetch(path, { headers });
    if (!response.ok) {
      let detail = String(response.status);
      try { detail = (await response.json()).detail || detail; } catch (err) { /* not JSON */ }
      return showError({ ok: false, status: response.status, body: { detail: t("download_failed", { detail }) } });
    }
    const blob = await response.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  }

  function legendHtml() {
    return "<div class='ea-legend'>" + Object.entries(cfg.statusColours).map(([status, colour]) =>
      "<span><i style='background:" + colour + "'></i>" + escape(t("status_" + status)) + "</span>").join("") + "</div>";
  }

  function batchHtml() {
    if (!canEdit()) return "";
    const statuses = Object.values(state.eas).map((ea) => ea.feature.properties.status);
    let html = "<div class='ea-actions ea-batch'>";
    if (statuses.length === 0) html += button("generate", null, "ea-primary");
    else if (statuses.every((s) => s === "draft")) html += button("regenerate", null, "ea-danger");
    if (statuses.includes("draft") || statuses.includes("rejected")) html += button("submit_all");
    if (canApprove() && statuses.includes("submitted")) html += button("approve_all");
    return html + selectionToolsHtml() + "</div>" + multiHintHtml();
  }

  /* "Select several" and "clear selection": merges on the EAs tab, supervisor areas and
     assignments on the Organise tab both need several EAs picked by tapping. */
  function selectionToolsHtml() {
    return "<button type='button' class='ea-multi' data-action='multi' aria-pressed='" + state.multi + "'>" +
      escape(t("multi")) + "</button>" + (state.selected.length ? button("clear_selection") : "");
  }

  function multiHintHtml() {
    return state.multi ? "<div class='ea-hint'>" + escape(t("multi_on")) + "</div>" : "";
  }

  function listHtml() {
    const rows = Object.values(state.eas).sort((a, b) => a.feature.properties.code.localeCompare(b.feature.properties.code));
    if (!rows.length) return "";
    return "<h4>" + escape(t("ea_list")) + "</h4><div class='ea-list'><table><tr><th>" + escape(t("code")) + "</th><th>" +
      escape(t("status")) + "</th><th class='num'>" + escape(t("households_short")) + "</th></tr>" +
      rows.map((ea) => {
        const p = ea.feature.properties;
        const cls = (state.selected.includes(ea.feature.id) ? "ea-row-selected " : "") + (p.status === "rejected" ? "ea-row-rejected" : "");
        return "<tr class='ea-row " + cls + "' data-ea='" + ea.feature.id + "'><td>" + escape(p.code) + "</td><td>" +
          escape(t("status_" + p.status)) + (p.rejection_reason ? "<div class='ea-reason'>" + escape(p.rejection_reason) + "</div>" : "") +
          "</td><td class='num'>" + escape(fmt(p.households)) + "</td></tr>";
      }).join("") + "</table></div>";
  }

  function selectedHtml() {
    if (!state.selected.length) return "<div class='ea-hint'>" + escape(t("none_selected")) + "</div>";
    if (state.selected.length > 1) {
      const codes = state.selected.map(codeOf);
      let html = "<h4>" + escape(t("selected")) + ": <span class='ea-code'>" + escape(codes.join(", ")) + "</span></h4><div class='ea-actions'>";
      if (canEdit()) html += button("merge", t("merge_n", { count: codes.length }), "ea-primary");
      return html + "</div>";
    }
    const ea = state.eas[state.selected[0]];
    const p = ea.feature.properties;
    let html = "<h4>" + escape(t("selected")) + ": <span class='ea-code'>" + escape(p.code) + "</span></h4>";
    if (p.status === "rejected" && p.rejection_reason) {
      html += "<div class='ea-rejected-box'>" + escape(t("rejected_because", { reason: p.rejection_reason })) + "</div>";
    }
    html += "<table><tr><td>" + escape(t("status")) + "</td><td class='ea-status num'>" + escape(t("status_" + p.status)) + "</td></tr>" +
      "<tr><td>" + escape(t("households")) + "</td><td class='num'>" + escape(fmt(p.households)) + "</td></tr>" +
      "<tr><td>" + escape(t("population")) + "</td><td class='num'>" + escape(fmt(p.population)) + "</td></tr>" +
      "<tr><td>" + escape(t("listed")) + "</td><td class='num'>" + escape(fmt(p.listed_dwellings) + " / " + fmt(p.listed_households)) + "</td></tr>" +
      "<tr><td>" + escape(t("version")) + "</td><td class='num'>" + escape(String(p.version)) + "</td></tr></table><div class='ea-actions'>";
    if (state.editing !== null) {
      const together = state.shared ? [...state.shared.touched].map(codeOf) : [];
      html += button("save_shape", null, "ea-primary") + button("cancel_shape", t("cancel")) + "</div>" +
        "<div class='ea-hint'>" + escape(t("editing_hint", { code: p.code }) + " " + t("shared_hint")) + "</div>" +
        (together.length ? "<div class='ea-hint ea-moved-together'>" + escape(t("moved_together", { codes: together.join(", ") })) + "</div>" : "");
      return html;
    }
    if (canEdit()) html += button("edit_shape");
    if (canEdit() && (p.status === "draft" || p.status === "rejected")) html += button("submit");
    if (canApprove() && p.status === "submitted") html += button("approve", null, "ea-primary") + button("reject", null, "ea-danger");
    if (canEdit()) html += button("delete", null, "ea-danger");
    html += button("history") + button("field_map") + "</div>";
    if (canEdit()) html += "<div class='ea-hint'>" + escape(t("draw_split")) + "</div>";
    html += attributesHtml(p);
    if (state.history && state.history.id === state.selected[0]) html += historyHtml();
    return html;
  }

  function attributesHtml(p) {
    const disabled = canEdit() ? "" : " disabled";
    const option = (value, label) => "<option value='" + value + "'" + ((p.urban_rural || "") === value ? " selected" : "") + ">" + escape(label) + "</option>";
    return "<h4>" + escape(t("attributes")) + "</h4><div class='ea-attributes'>" +
      "<label>" + escape(t("urban_rural")) + "<select name='urban_rural'" + disabled + ">" + option("", t("unknown")) +
      option("urban", t("urban")) + option("rural", t("rural")) + "</select></label>" +
      "<label>" + escape(t("boundary_description")) + "<textarea name='boundary_description' maxlength='2000'" + disabled + ">" +
      escape(p.boundary_description || "") + "</textarea></label>" +
      "<label>" + escape(t("landmarks")) + "<textarea name='landmarks' maxlength='2000'" + disabled + ">" + escape(p.landmarks || "") +
      "</textarea></label>" + (canEdit() ? button("save_attributes") : "") + "</div>";
  }

  /* "approve v3" from the queue, said in the page's language ("duyệt v3"). */
  function previousLabel(previous) {
    const [action, version] = previous.split(" ");
    return t("action_" + action) + (version ? " " + version : "");
  }

  function historyHtml() {
    const entries = state.history.entries;
    const current = state.eas[state.history.id].feature.properties.version;
    const rows = entries.slice().reverse().map((h) => {
      const feature = h.after || h.before;
      const version = feature && feature.properties ? feature.properties.version : null;
      const shaped = feature && feature.geometry;
      let actions = "";
      if (shaped) actions += "<button type='button' class='ea-show-version' data-entry='" + h.id + "'>" + escape(t("show_version")) + "</button>";
      if (shaped && h.after && canEdit() && version !== current) {
        actions += "<button type='button' class='ea-restore' data-entry='" + h.id + "'>" + escape(t("restore")) + "</button>";
      }
      return "<tr><td>" + escape(when(h.at)) + "</td><td>" + escape(t("action_" + h.action)) +
        (version ? " (v" + escape(String(version)) + (version === current ? ", " + escape(t("current")) : "") + ")" : "") +
        "</td><td>" + escape(h.user) + "</td><td>" + escape(h.reason || "") + "</td><td>" + actions + "</td></tr>";
    }).join("");
    return "<h4>" + escape(t("history_of", { code: codeOf(state.history.id) })) + "</h4><table class='ea-history-table'><tr><th>" +
      escape(t("when")) + "</th><th>" + escape(t("action")) + "</th><th>" + escape(t("who")) + "</th><th>" + escape(t("why")) +
      "</th><th></th></tr>" + rows + "</table>";
  }

  function easTabHtml() {
    return coverageHtml() + batchHtml() + selectedHtml() + listHtml();
  }

  /* An area's supervisor: a choice for editors (saved at once, the area as read), else the name. */
  function areaSupervisorHtml(a) {
    const chosen = a.supervisor ? a.supervisor.code : "";
    if (!canEdit()) return escape(a.supervisor ? a.supervisor.name : t("none"));
    // (no name: a reload must show the supervisor saved, never restore the choice made)
    return "<select class='ea-area-supervisor' data-area='" + a.id + "' aria-label='" +
      escape(t("area_supervisor_of", { code: a.code })) + "'><option value=''>" + escape(t("none")) + "</option>" +
      staffOptions("supervisor", chosen) + "</select>";
  }

  function staffOptions(role, chosen) {
    return state.staff.filter((s) => s.role === role).map((s) =>
      "<option value='" + escape(s.code) + "'" + (s.code === chosen ? " selected" : "") + ">" + escape(s.name + " (" + s.code + ")") + "</option>").join("");
  }

  function organiseTabHtml() {
    let html = "";
    const areas = state.areas;
    html += "<h4>" + escape(t("supervisor_areas")) + " <small>(" + escape(t("band")) + " " + cfg.areaBand.join("–") + ")</small></h4>";
    if (!areas || !areas.areas.length) html += "<div class='ea-hint'>" + escape(t("no_areas")) + "</div>";
    else {
      html += "<table class='ea-areas'>" + areas.areas.map((a) =>
        "<tr class='ea-area' data-area='" + a.id + "'><td><b>" + escape(a.code) + "</b><br>" + escape(a.eas.join(", ")) +
        (a.warnings.length ? a.warnings.map((w) => "<div class='ea-warn'>" + escape(w) + "</div>").join("") : "") +
        "<div class='ea-area-tools'>" + areaSupervisorHtml(a) + "<button type='button' class='ea-show-area' data-area='" + a.id + "'>" +
        escape(t("show_area")) + "</button></div></td><td>" +
        (canEdit() ? "<button type='button' class='ea-delete-area ea-danger' data-area='" + a.id + "' data-code='" + escape(a.code) + "'>" +
          escape(t("delete_area")) + "</button>" : "") + "</td></tr>").join("") + "</table>";
    }
    html += organiser.html();
    if (canEdit()) html += "<div class='ea-actions ea-select-tools'>" + selectionToolsHtml() + "</div>" + multiHintHtml();
    if (canEdit() && state.selected.length) {
      const taken = selectedInAreas();
      // (an EA is in one area at most: the API refuses such an area with a 409, so the page
      // says why instead of offering it)
      if (taken.length) {
        html += "<div class='ea-hint ea-in-area'>" + escape(t("already_in_area", {
          count: taken.length, areas: [...new Set(taken.map((x) => x.area))].join(", ") })) + "</div>";
      } else {
        html += "<div class='ea-make-area'><label>" + escape(t("supervisor")) + " <select name='area_supervisor'><option value=''>" +
          escape(t("none")) + "</option>" + staffOptions("supervisor") + "</select></label>" +
          button("make_area", t("make_area", { count: state.selected.length })) + "</div>";
      }
      html += "<div class='ea-assign'><label>" + escape(t("assign", { count: state.selected.length })) +
        " <select name='enumerator'><option value=''>" + escape(t("unassign")) + "</option>" + staffOptions("enumerator") +
        "</select></label>" + button("assign_selected", t("assign_button")) + "</div>";
    } else if (canEdit()) {
      html += "<div class='ea-hint'>" + escape(t("none_selected")) + "</div>";
    }
    html += workloadHtml();
    html += "<h4>" + escape(t("staff")) + "</h4><table class='ea-staff'>" + state.staff.map((s) =>
      "<tr><td>" + escape(s.code) + "</td><td>" + escape(s.name) + "</td><td>" + escape(t(s.role)) + "</td><td>" +
      (canEdit() ? "<button type='button' class='ea-remove-staff' data-code='" + escape(s.code) + "' data-name='" + escape(s.name) + "'>" +
        escape(t("remove")) + "</button>" : "") + "</td></tr>").join("") + "</table>";
    if (canEdit()) {
      html += "<div class='ea-form ea-staff-form'><input name='staff_code' placeholder='" + escape(t("staff_code")) +
        "'><input name='staff_name' placeholder='" + escape(t("staff_name")) + "'><select name='staff_role'><option value='enumerator'>" +
        escape(t("enumerator")) + "</option><option value='supervisor'>" + escape(t("supervisor")) + "</option></select><input name='staff_phone' placeholder='" +
        escape(t("phone")) + "'>" + button("add_staff") + "</div>";
      html += "<h4>" + escape(t("listing_upload")) + "</h4><input type='file' name='listing' accept='.csv,text/csv'>" + button("upload");
    }
    return html;
  }

  function workloadHtml() {
    const w = state.workload;
    if (!w) return "";
    let html = "<h4>" + escape(t("workload_table")) + "</h4><table class='ea-workload-table'><tr><th>" + escape(t("enumerator")) +
      "</th><th class='num'>" + escape(t("eas")) + "</th><th class='num'>" + escape(t("households_short")) + "</th><th class='num'>" +
      escape(t("area_km2")) + "</th></tr>";
    for (const row of w.enumerators) {
      const who = row.enumerator ? row.enumerator.name : t("unassigned");
      html += "<tr class='ea-workload-row" + (row.enumerator ? "" : " ea-unassigned") + "'><td>" + escape(who) +
        (row.flag ? " <span class='ea-flag'>" + escape(t("flag_" + row.flag)) + "</span>" : "") + "</td><td class='num'>" +
        row.eas.length + "</td><td class='num'>" + escape(fmt(row.households)) + "</td><td class='num'>" + escape(fmt(row.area_km2, 2)) + "</td></tr>";
    }
    html += "</table>";
    if (w.outside_band.length) html += "<div class='ea-warn'>" + escape(t("workload") + " " + cfg.householdsBand.join("–") + ": " +
      w.outside_band.map((o) => o.ea + " (" + o.households + ")").join(", ")) + "</div>";
    if (w.without_supervisor_area.length) html += "<div class='ea-warn'>" + escape(t("no_area") + ": " + w.without_supervisor_area.length) + "</div>";
    return html;
  }

  function reviewTabHtml() {
    const r = state.review;
    if (!r) return "";
    let html = "<h4>" + escape(t("queue")) + " (" + r.submitted.length + ")</h4>";
    if (!r.submitted.length) html += "<div class='ea-hint'>" + escape(t("queue_empty")) + "</div>";
    else {
      html += "<div class='ea-hint'>" + escape(t("queue_keys")) + "<span class='ea-swatch' style='background:#31a354'></span>" +
        escape(t("added")) + "<span class='ea-swatch' style='background:#de2d26'></span>" + escape(t("removed")) + "</div>";
      html += "<div class='ea-queue'><ul>" + r.submitted.map((e, i) =>
        "<li class='ea-queue-item" + (i === state.reviewFocus ? " ea-focused" : "") + "' data-index='" + i + "'><b>" + escape(e.code) + "</b> · " +
        escape(fmt(e.households)) + " " + escape(t("households_after_number")) + "<br><small>" + escape(t("submitted_by")) + " " + escape(e.submitted_by) +
        ", " + escape(when(e.submitted_at)) + (e.previous ? " · " + escape(t("compared_with")) + " " + escape(previousLabel(e.previous)) : "") + "</small>" +
        (i === state.reviewFocus && canApprove() ? "<div>" + button("approve", null, "ea-primary") + button("reject", null, "ea-danger") + "</div>" : "") +
        "</li>").join("") + "</ul></div>";
    }
    const others = r.counts.filter((c) => c.commune !== cfg.commune.code);
    html += "<h4>" + escape(t("status_counts")) + "</h4><table class='ea-counts'><tr><th>" + escape(t("commune")) + "</th><th class='num'>" +
      escape(t("status_submitted")) + "</th><th class='num'>" + escape(t("status_approved")) + "</th><th class='num'>" + escape(t("eas")) + "</th></tr>" +
      r.counts.map((c) => "<tr><td>" + (c.commune === cfg.commune.code ? "<b>" + escape(c.commune) + "</b>" :
        "<a href='?" + escape(new URLSearchParams({ commune: c.commune, round: cfg.round, lang: cfg.lang, tab: "review" }).toString()) + "'>" +
        escape(c.commune) + "</a>") + "</td><td class='num'>" + c.submitted + "</td><td class='num'>" + c.approved + "</td><td class='num'>" +
        c.eas + "</td></tr>").join("") + "</table>";
    if (!others.length) html += "";
    return html;
  }

  function searchHtml() {
    return "<div class='ea-search'><input name='q' autocomplete='off' placeholder='" + escape(t("find_commune")) +
      "'><button type='button' class='ea-find'>" + escape(t("find")) + "</button></div><div class='ea-results'></div>";
  }

  function linksHtml() {
    const params = new URLSearchParams({ round: cfg.round, lang: cfg.lang });
    let html = "<div class='ea-links'><a class='ea-progress-link' href='" + escape(cfg.api + "/map/ea/progress?" + params.toString()) + "'>" +
      escape(t("progress")) + "</a>";
    if (state.user && state.user.role === "admin") {
      html += "<a class='ea-users-link' href='" + escape(cfg.api + "/map/users?lang=" + cfg.lang) + "'>" + escape(t("admin_users")) + "</a>";
    }
    return html + "</div>";
  }

  function render() {
    if (!panel) return;
    const title = cfg.commune
      ? "<h3>" + escape(cfg.commune.name) + " <small>(" + escape(cfg.commune.code) + ", " +
        escape(cfg.commune.provinceName || cfg.commune.province || "") + ")</small></h3><div class='ea-round'>" +
        escape(t("round")) + " " + escape(cfg.round) + "</div>"
      : "<h3>" + escape(t("title")) + "</h3><div class='ea-hint'>" + escape(t("choose_commune")) + "</div>";
    // a reload finishing while someone types (a name, a reason) must not eat their typing
    const typed = {};
    panel.querySelectorAll("input[name], textarea[name], select[name]").forEach((i) => {
      if (i.type !== "file") typed[i.name] = i.value;
    });
    const focused = panel.contains(document.activeElement) ? document.activeElement.name : null;
    const tokenOpen = panel.querySelector("details.ea-token[open]") !== null;
    const keepSelection = state.selected.join(",") === (panel.dataset.selected || "");
    const scroll = panel.scrollTop;
    let body = cfg.commune ? "" : chooserHtml();
    if (cfg.commune) {
      body = tabsHtml();
      if (state.tab === "organise") body += organiseTabHtml();
      else if (state.tab === "review") body += reviewTabHtml();
      else body += easTabHtml();
    }
    panel.innerHTML = title + signInHtml() + searchHtml() + body + messageHtml() + linksHtml() +
      "<div class='ea-lang'><a href='?" + langLink("vi") + "'>Tiếng Việt</a> · <a href='?" + langLink("en") +
      "'>English</a></div>";
    panel.querySelectorAll("input[name], textarea[name], select[name]").forEach((i) => {
      // (typed values survive a redraw, unless another EA was selected meanwhile)
      const attribute = ["urban_rural", "boundary_description", "landmarks"].includes(i.name);
      if (typed[i.name] !== undefined && i.type !== "file" && (!attribute || keepSelection)) i.value = typed[i.name];
      if (i.name === focused) i.focus();
    });
    // (and the token field, once unfolded, stays unfolded)
    const token = panel.querySelector("details.ea-token");
    if (token && tokenOpen) token.open = true;
    panel.dataset.selected = state.selected.join(",");
    panel.scrollTop = scroll;
    wirePanel();
  }

  function langLink(lang) {
    const params = new URLSearchParams(window.location.search);
    params.set("lang", lang);
    return escape(params.toString());
  }

  function wirePanel() {
    const on = (selector, handler) => panel.querySelectorAll(selector).forEach((el) => el.addEventListener("click", (e) => handler(el, e)));
    const password = panel.querySelector("input[name=password]");
    if (password) password.addEventListener("keydown", (e) => { if (e.key === "Enter") signInWithPassword(); });
    const token = panel.querySelector("input[name=token]");
    if (token) token.addEventListener("keydown", (e) => { if (e.key === "Enter") signInWith(token.value.trim()); });
    const q = panel.querySelector("input[name=q]");
    q.addEventListener("keydown", (e) => { if (e.key === "Enter") findCommune(q.value); });
    on(".ea-find", () => findCommune(q.value));
    on("button[data-action]", (b) => act(b.dataset.action));
    on("button[data-tab]", (b) => switchTab(b.dataset.tab));
    organiser.wire(panel);
    on("tr.ea-row", (row) => {
      const id = Number(row.dataset.ea);
      select(id, state.multi);
      const layer = state.eas[id] && state.eas[id].layer;
      if (layer && !map.getBounds().contains(layer.getBounds())) map.fitBounds(layer.getBounds(), { maxZoom: map.getZoom() });
    });
    on(".ea-show-version", (b) => previewVersion(state.history.entries.find((h) => h.id === Number(b.dataset.entry))));
    on(".ea-restore", (b) => restoreVersion(Number(b.dataset.entry)));
    on(".ea-delete-area", (b) => deleteArea(Number(b.dataset.area), b.dataset.code));
    on(".ea-show-area", (b) => showArea(Number(b.dataset.area)));
    panel.querySelectorAll("select.ea-area-supervisor").forEach((el) =>
      el.addEventListener("change", () => setAreaSupervisor(Number(el.dataset.area), el.value || null)));
    on(".ea-remove-staff", (b) => removeStaff(b.dataset.code, b.dataset.name));
    on("li.ea-queue-item", (li, e) => {
      if (e.target.tagName === "BUTTON") return;
      state.reviewFocus = Number(li.dataset.index);
      showReviewChange();
      render();
    });
  }

  async function switchTab(tab) {
    state.tab = tab;
    overlay.clearLayers();
    if (tab !== "organise") organiser.leave();
    if (tab === "organise") await loadOrganisation();
    if (tab === "review") await loadReview();
    render();
  }

  async function act(action) {
    if (action.startsWith("download_")) {
      const format = action.slice("download_".length);
      const suffix = { gpkg: "gpkg", shp: "shp.zip", geojson: "geojson", csv: "csv" }[format];
      return saveFile(ITEMS + "?commune=" + cfg.commune.code + "&round=" + cfg.round + "&f=" + format,
        "enumeration-areas-" + cfg.commune.code + "." + suffix);
    }
    switch (action) {
      case "sign_in": return signInWithPassword();
      case "token_sign_in": return signInWith(panel.querySelector("input[name=token]").value.trim());
      case "sign_out": return signOutNow();
      case "merge": return mergeSelected();
      case "history": return showHistory();
      case "field_map": {
        const id = state.selected[0];
        return saveFile(ITEMS + "/" + id + "/field-map.pdf?lang=" + cfg.lang, "ea-" + codeOf(id) + ".pdf");
      }
      case "map_book":  // (made in the background: progress, then the PDF, see jobs.js)
        return jobs.start("ea-map-book", { commune: cfg.commune.code, round: cfg.round, lang: cfg.lang },
          t("job_title", { commune: cfg.commune.name, round: cfg.round }));
      case "generate": case "regenerate": return generate();
      case "submit_all": return transitionAll(["draft", "rejected"], "submit", "confirm_submit_all");
      case "approve_all": return approveAll();
      case "multi":
        state.multi = !state.multi;
        restyle();
        return render();
      case "clear_selection":
        state.selected = [];
        restyle();
        return render();
      case "edit_shape": return startEditing();
      case "save_shape": return saveEditing();
      case "cancel_shape": return cancelEditing();
      case "save_attributes": return saveAttributes();
      case "make_area": return makeArea();
      case "assign_selected": return assignSelected();
      case "add_staff": return addStaff();
      case "upload": return uploadListing();
      case "approve": case "reject":
        if (state.tab === "review") return reviewAction(action);
        return runOnSelected(action);
      default: return runOnSelected(action);
    }
  }

  async function signInWithPassword() {
    const name = panel.querySelector("input[name=username]").value.trim();
    const password = panel.querySelector("input[name=password]").value;
    if (!name || !password) return;
    const result = await call("POST", cfg.api + "/users/sign-in",
                              { body: { name, password, label: navigator.userAgent.slice(0, 60) } });
    if (!result.ok) {
      panel.querySelector("input[name=password]").value = "";
      render();
      showError(result, t("sign_in_failed"));
      return;
    }
    await signInWith(result.body.token);
    const input = panel.querySelector("input[name=password]");
    if (input) input.value = "";
  }

  async function signInWith(token) {
    if (!token) return;
    state.token = token;
    const result = await call("GET", cfg.api + "/users/me");
    if (!result.ok) {
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      render();
      showError(result, t("sign_in_failed"));
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    state.user = result.body;
    state.message = null;
    if (canEdit() && cfg.commune) addDrawTools();
    if (tiles) {  // (their requests now carry the token)
      map.removeLayer(tiles);
      addTiles();
    }
    if (state.tab === "review" && state.user && RANK[state.user.role] < RANK.supervisor) state.tab = "eas";
    if (cfg.commune && state.tab === "organise") await loadOrganisation();
    if (cfg.commune && state.tab === "review") await loadReview();
    chooseScope();
    render();
  }

  async function signOutNow() {
    if (state.token) await call("POST", cfg.api + "/users/sign-out");
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.user = null;
    state.multi = false;
    if (state.editing !== null) await cancelEditing();
    removeDrawTools();
    if (state.tab === "review") state.tab = "eas";
    render();
  }

  async function findCommune(text) {
    if (!text.trim()) return;
    const url = cfg.api + "/collections/commune-" + cfg.vintage + "/items?limit=10&zoom=9" +
      "&properties=code,name,parent_code&q=" + encodeURIComponent(text);
    const result = await call("GET", url);
    const box = panel.querySelector(".ea-results");
    box.innerHTML = "";
    if (!result.ok || !result.body.features.length) { box.textContent = t("no_match"); return; }
    for (const f of result.body.features) {
      const a = L.DomUtil.create("a", "ea-hit", box);
      const params = new URLSearchParams({ commune: f.id, round: cfg.round, lang: cfg.lang });
      a.href = "?" + params.toString();
      a.textContent = f.properties.name + " (" + f.id + ")";
    }
  }

  /* ---- no commune chosen: the provinces on the map, the communes to choose from (those
     of the user's scope once signed in, or of a province tapped on the map) ---- */
  let communeTable = null; // /maps/units: codes, names, parents

  async function addOverview() {
    const [provinces, table] = await Promise.all([
      call("GET", cfg.api + "/collections/province-" + cfg.vintage + "/items?limit=100&zoom=5&properties=code,name"),
      call("GET", cfg.api + "/maps/units?collection=commune-" + cfg.vintage)]);
    if (table.ok) communeTable = table.body;
    if (provinces.ok) {
      const layer = L.geoJSON(provinces.body, {
        style: { color: "#4f6f91", weight: 1, fillColor: "#dfe8f0", fillOpacity: 0.6 },
        onEachFeature: (f, l) => {
          l.bindTooltip(escape(f.properties.name), { sticky: true });
          l.on("click", () => chooseProvince(f.id, f.properties.name, l.getBounds()));
        },
      }).addTo(map);
      window.eaEditor.overview = layer.getLayers().length;
    }
    chooseScope();
    render();
  }

  function communesWhere(test) {
    if (!communeTable) return [];
    const found = [];
    communeTable.codes.forEach((code, i) => { if (test(code, communeTable.parents[i])) found.push([code, communeTable.names[i]]); });
    return found.sort((a, b) => a[1].localeCompare(b[1], cfg.lang));
  }

  function chooseProvince(code, name, bounds) {
    state.chooser = { title: t("communes_of", { name: name + " (" + code + ")" }), communes: communesWhere((c, parent) => parent === code) };
    map.fitBounds(bounds);
    render();
  }

  function chooseScope() {
    const scope = (state.user && state.user.scope) || [];
    if (cfg.commune || !scope.length || state.chooser || !communeTable) return;
    state.chooser = { title: t("communes_in_scope"), communes: communesWhere((c, parent) => scope.includes(c) || scope.includes(parent)) };
  }

  function chooserHtml() {
    if (!state.chooser) return "<div class='ea-hint ea-choose-hint'>" + escape(t("choose_on_map")) + "</div>";
    const link = (code) => escape("?" + new URLSearchParams({ commune: code, round: cfg.round, lang: cfg.lang }).toString());
    return "<div class='ea-chooser'><h4>" + escape(state.chooser.title) + " (" + state.chooser.communes.length + ")</h4><ul class='ea-commune-list'>" +
      state.chooser.communes.map(([code, name]) => "<li><a class='ea-hit' href='" + link(code) + "'>" + escape(name) + " (" + escape(code) + ")</a></li>").join("") +
      "</ul></div>";
  }

  /* The panel: beside the map (top right) on a wide screen, a sheet over the lower part of
     a phone's screen; either folds away with its button (like the viewer's), so the map
     stays usable. The button is outside what render() redraws. */
  function addPanel() {
    const control = L.control({ position: "topright" });
    control.onAdd = () => {
      const wrap = L.DomUtil.create("div", "gv-controls ea-panel-wrap");
      const toggle = L.DomUtil.create("button", "ea-panel-toggle", wrap);
      toggle.type = "button";
      panel = L.DomUtil.create("div", "ea-panel", wrap);
      panel.id = "ea-panel";
      toggle.setAttribute("aria-controls", panel.id);
      let open = window.innerWidth >= PHONE_WIDTH;
      const layout = () => {
        const phone = window.innerWidth < PHONE_WIDTH;
        wrap.classList.toggle("ea-sheet", phone);
        wrap.classList.toggle("ea-folded", !open);
        panel.hidden = !open;
        toggle.setAttribute("aria-expanded", String(open));
        toggle.setAttribute("aria-label", t(open ? "panel_close" : "panel_open"));
        toggle.title = t(open ? "panel_close" : "panel_open");
        toggle.textContent = (open ? (phone ? "▾ " : "› ") : (phone ? "▴ " : "‹ ")) +
          (cfg.commune ? cfg.commune.name : t("title"));
      };
      // (on a phone the map's bottom-left controls, the layer list and the scale, stand on
      // the sheet, folded or open: it stacks above them and would hide them)
      const sheetHeight = () => {
        const phone = window.innerWidth < PHONE_WIDTH;
        const height = phone ? Math.ceil(window.innerHeight - wrap.getBoundingClientRect().top) : 0;
        map.getContainer().style.setProperty("--ea-sheet-h", height + "px");
      };
      toggle.addEventListener("click", () => { open = !open; layout(); sheetHeight(); });
      window.addEventListener("resize", () => { layout(); sheetHeight(); });
      if (window.ResizeObserver) new ResizeObserver(sheetHeight).observe(wrap);
      layout();
      L.DomEvent.disableClickPropagation(wrap);
      L.DomEvent.disableScrollPropagation(wrap);
      return wrap;
    };
    control.addTo(map);
  }

  /* The commune framed in the part of the map the panel leaves free (beside it on a tablet
     or desktop; above the folded bar on a phone). */
  function frameBesidePanel() {
    map.fitBounds(cfg.bounds, besidePanel());
  }

  /* fitBounds' padding that keeps what is framed out from under the panel. */
  function besidePanel() {
    const wrap = panel && panel.parentElement;
    const box = wrap ? wrap.getBoundingClientRect() : null;
    const wide = window.innerWidth >= PHONE_WIDTH;
    const right = wide && box ? window.innerWidth - box.left + 10 : 20;
    const bottom = !wide && box ? window.innerHeight - box.top + 10 : 20;
    return { paddingTopLeft: [20, 20], paddingBottomRight: [right, bottom] };
  }

  /* An EA's tooltip opens beside the pointer on the side the panel leaves free: Leaflet
     puts it right of the pointer on the map's left half, under the panel when the pointer
     is near it (and above the pointer when a phone's sheet is below it). */
  function tooltipAwayFromPanel(e) {
    const tooltip = e.target.getTooltip();
    const wrap = panel && panel.parentElement;
    if (!tooltip || !wrap || !e.originalEvent) return;
    const box = wrap.getBoundingClientRect();
    const element = tooltip.getElement();
    const width = element && element.offsetWidth ? element.offsetWidth : 260;
    const height = element && element.offsetHeight ? element.offsetHeight : 40;
    const x = e.originalEvent.clientX;
    const y = e.originalEvent.clientY;
    let direction = e.containerPoint && e.containerPoint.x >= map.getSize().x / 2 ? "left" : "right";
    if (wrap.classList.contains("ea-sheet")) {
      if (y + height + 20 > box.top) direction = "top";
    } else if (y >= box.top - height && y <= box.bottom && x + width + 20 > box.left) {
      direction = "left";
    }
    tooltip.options.direction = direction;
  }

  window.eaEditor = {
    map, ready: false, lastResult: null, writes: [], settled: 0, coverage: null, tileLoads: 0,
    queue: [], neighbourIds: [], movedTogether: [],
    eas: () => Object.values(state.eas).map((ea) => ({ id: ea.feature.id, code: ea.feature.properties.code,
                                                        status: ea.feature.properties.status,
                                                        reason: ea.feature.properties.rejection_reason,
                                                        etag: ea.etag })),
    selected: () => state.selected.slice(),
    select: (id, add) => select(id, add),
    findings: () => findings.getLayers().length,
    tileCodes: () => [...tileCodes],
    user: () => state.user,
    organising: () => organising,
    editingId: () => state.editing,
    editHandles: () => document.querySelectorAll(".leaflet-editing-icon").length,
  };

  const jobs = createJobs({ api: API, lang: cfg.lang, t, token: () => state.token,
    confirm: (text, okLabel) => confirmAction(text, okLabel, true), fail: (result, title) => showError(result, title) });

  async function start() {
    localiseDraw();
    map.fitBounds(cfg.bounds);
    addBaseLayers();
    addPanel();
    const wanted = new URLSearchParams(window.location.search).get("tab");
    if (["eas", "organise", "review"].includes(wanted)) state.tab = wanted;
    render();
    frameBesidePanel();
    if (state.token) await signInWith(state.token);
    if (cfg.commune) {
      addTiles();
      addZoomNote();
      await Promise.all([addCommuneOutline(), loadLines()]);
      await reload();
    } else await addOverview();
    await jobs.resume();
    window.eaEditor.ready = true;
  }
  start();
})();
