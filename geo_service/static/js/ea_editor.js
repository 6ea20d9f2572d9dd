/* The enumeration-area editor: one commune's EAs, drawn, edited, split, merged, submitted and
   approved through the API with the user's token; rule problems are shown on the map.
   Built on the pages' shared modules: one API client, one table of texts, DOM built with
   text nodes only. */
import { config, h, fill } from "./dom.js";
import { createApi } from "./api.js";
import { createI18n } from "./i18n.js";
import { localiseDraw } from "./draw_i18n.js";

const cfg = config("ea-editor-config");
const { t, number } = createI18n(cfg.texts, cfg.lang);
const map = window[cfg.mapName];
const ITEMS = "/collections/enumeration-areas/items";
const TOKEN_KEY = "geoServiceToken";
const RANK = { viewer: 0, editor: 1, supervisor: 2, admin: 3 };
document.documentElement.lang = cfg.lang;

const state = { token: sessionStorage.getItem(TOKEN_KEY), user: null, eas: {}, selected: [],
  coverage: null, drawControl: null, message: null, rejected: null };
const api = createApi(cfg.api, cfg.lang, { token: () => state.token });
const editable = L.featureGroup().addTo(map);
const findings = L.featureGroup().addTo(map);
const gaps = L.featureGroup().addTo(map);
let tiles = null;
const tileCodes = new Set(); // EA codes drawn from the tiles since the last redraw
let panel = null;

const fmt = (value, digits) => number(value, digits === undefined ? 0 : digits);
const textNode = (text) => h("span", {}, text); // for Leaflet tooltips and popups: as text

/* One API call; the answer is recorded for the panel and for tests. */
async function call(method, path, options) {
  const opts = options || {};
  const result = await api.request(method, path, null, opts.body, { etag: opts.etag });
  window.eaEditor.lastResult = result;
  if (method !== "GET") window.eaEditor.writes.push({ method, path, status: result.status, body: result.body });
  return result;
}

/* ---- the map layers ---- */

function statusStyle(status, selected) {
  return { color: selected ? "#08306b" : "#333", weight: selected ? 3 : 1,
    fill: true, fillColor: cfg.statusColours[status] || "#ccc", fillOpacity: selected ? 0.35 : 0.08 };
}

function addTiles() {
  const url = api.url("/collections/enumeration-areas/tiles/WebMercatorQuad/{z}/{x}/{y}", { round: cfg.round });
  tiles = L.vectorGrid.protobuf(url, {
    rendererFactory: L.svg.tile, interactive: false, maxNativeZoom: 18,
    // (with private reads the service wants the token for EA tiles too)
    fetchOptions: state.token ? { headers: { Authorization: "Bearer " + state.token } } : {},
    vectorTileLayerStyles: {
      "enumeration-areas": (props) => {
        tileCodes.add(props.code);
        return { fill: true, fillColor: cfg.statusColours[props.status] || "#ccc",
          fillOpacity: 0.55, color: "#555", weight: 0.6 };
      },
    },
  }).addTo(map);
  tiles.on("load", () => { window.eaEditor.tileLoads += 1; });
}

async function addCommuneOutline() {
  const result = await call("GET", "/collections/commune-" + cfg.vintage + "/items/" + cfg.commune.code);
  if (!result.ok) return;
  L.geoJSON(result.body, { interactive: false,
    style: { color: "#000", weight: 2.5, dashArray: "6 4", fill: false } }).addTo(map);
}

/* An EA as one Leaflet polygon (single-part EAs as a Polygon, so Leaflet.draw can edit them). */
function polygonOf(feature) {
  let geometry = feature.geometry;
  if (geometry.type === "MultiPolygon" && geometry.coordinates.length === 1) {
    geometry = { type: "Polygon", coordinates: geometry.coordinates[0] };
  }
  const layer = L.geoJSON({ type: "Feature", geometry, properties: {} }).getLayers()[0];
  layer.eaId = feature.id;
  layer.setStyle(statusStyle(feature.properties.status, false));
  const p = feature.properties;
  layer.bindTooltip(() => textNode(p.code + " · " + t("status_" + p.status) + " · " + fmt(p.households) + " " + t("households_short")),
    { sticky: true });
  layer.on("click", (e) => {
    L.DomEvent.stopPropagation(e);
    select(feature.id, e.originalEvent && e.originalEvent.shiftKey);
  });
  return layer;
}

async function loadEas() {
  const result = await call("GET", ITEMS + "?limit=10000&round=" + encodeURIComponent(cfg.round) +
    "&commune=" + encodeURIComponent(cfg.commune.code));
  if (!result.ok) { showError(result); return; }
  editable.clearLayers();
  state.eas = {};
  for (const feature of result.body.features) {
    const layer = polygonOf(feature);
    editable.addLayer(layer);
    state.eas[feature.id] = { feature, layer, etag: '"ea-' + feature.id + "-v" + feature.properties.version + '"' };
  }
  state.selected = state.selected.filter((id) => state.eas[id]);
  restyle();
}

async function loadCoverage() {
  const result = await call("GET", "/communes/" + cfg.commune.code + "/ea-coverage?round=" +
    encodeURIComponent(cfg.round) + "&vintage=" + encodeURIComponent(cfg.vintage));
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

function gapPopup(gap) {
  return h("div", { class: "ea-gap" }, h("b", {}, t("gaps")), ": " + fmt(gap.area_m2) + " m²", h("br"),
    canEdit() ? h("button", { type: "button", class: "ea-gap-to-ea",
      onclick: () => { map.closePopup(); createEa(gap.geometry); } }, t("gap_to_ea")) : null);
}

function marker(lonlat, text, colour, group) {
  L.circleMarker([lonlat[1], lonlat[0]], { radius: 9, color: colour, weight: 3, fillOpacity: 0.3 })
    .bindTooltip(textNode(text), { permanent: false }).addTo(group || findings);
}

async function reload() {
  await Promise.all([loadEas(), loadCoverage()]);
  if (tiles) {
    tileCodes.clear();
    tiles.redraw();
  }
  render();
}

/* ---- selection ---- */

function select(id, add) {
  if (add) {
    state.selected = state.selected.includes(id) ? state.selected.filter((s) => s !== id) : state.selected.concat([id]);
  } else {
    state.selected = [id];
  }
  restyle();
  render();
}

function restyle() {
  for (const [id, ea] of Object.entries(state.eas)) {
    ea.layer.setStyle(statusStyle(ea.feature.properties.status, state.selected.includes(Number(id))));
  }
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
  if (result.ok) showMessage(successText || t("saved"), warningsOf(result.body), "ok");
  else showError(result);
  await reload();
  // (every write so far has been answered and the map and panel show what followed it)
  window.eaEditor.settled = window.eaEditor.writes.length;
}

function warningsOf(body) {
  return ((body && body.warnings) || []).map((w) => w.warning || JSON.stringify(w));
}

async function createEa(geometry) {
  const feature = { type: "Feature", geometry,
    properties: { census_round: cfg.round, commune_code: cfg.commune.code, commune_vintage: cfg.vintage } };
  const result = await call("POST", ITEMS, { body: feature });
  await afterWrite(result);
  if (!result.ok) showDrawn(geometry);
  return result;
}

function showDrawn(geometry) {
  L.geoJSON(geometry, { interactive: false, style: { color: "#c0392b", weight: 2, dashArray: "5 5", fill: false } }).addTo(findings);
}

async function replaceEa(id, geometry) {
  const ea = state.eas[id];
  const body = { type: "Feature", geometry, properties: { reason: t("reason_edited") } };
  const result = await call("PUT", ITEMS + "/" + id, { body, etag: ea.etag });
  if (!result.ok) state.rejected = geometry;
  return result;
}

async function deleteEa(id) {
  return call("DELETE", ITEMS + "/" + id, { etag: state.eas[id].etag });
}

async function transition(id, action, reason) {
  const query = reason ? "?reason=" + encodeURIComponent(reason) : "";
  return call("POST", ITEMS + "/" + id + "/" + action + query, { etag: state.eas[id].etag });
}

async function splitSelected(line) {
  const id = state.selected[0];
  return call("POST", ITEMS + "/" + id + "/split", { body: { line, reason: t("reason_split") }, etag: state.eas[id].etag });
}

async function mergeSelected() {
  const ids = state.selected.slice();
  const etags = ids.map((id) => state.eas[id].etag).join(", ");
  const result = await call("POST", "/collections/enumeration-areas/merge",
    { body: { ids, reason: t("reason_merged") }, etag: etags });
  if (result.ok) state.selected = [result.body.id];
  await afterWrite(result);
}

async function generate() {
  const replace = Object.keys(state.eas).length > 0;
  const result = await call("POST", "/communes/" + cfg.commune.code + "/ea-generate?round=" +
    encodeURIComponent(cfg.round) + "&vintage=" + encodeURIComponent(cfg.vintage) + (replace ? "&replace=true" : ""));
  await afterWrite(result, result.ok ? t("saved") + ": " + result.body.created + " " + t("eas") : null);
}

async function transitionAll(fromStatus, action) {
  let last = null;
  for (const [id, ea] of Object.entries(state.eas)) {
    if (ea.feature.properties.status !== fromStatus) continue;
    last = await transition(Number(id), action);
    if (!last.ok) break;
  }
  if (last) await afterWrite(last);
}

async function runOnSelected(action) {
  const id = state.selected[0];
  if (id === undefined) return;
  let result;
  if (action === "delete") {
    // destructive: asked first
    if (!window.confirm(t("confirm_delete") + " " + state.eas[id].feature.properties.code + "?")) return;
    result = await deleteEa(id);
    state.selected = [];
  } else if (action === "reject") {
    const reason = window.prompt(t("reject_reason"));
    if (!reason || !reason.trim()) return;
    result = await transition(id, action, reason.trim());
  } else {
    result = await transition(id, action);
  }
  await afterWrite(result);
}

async function showHistory(id) {
  const result = await call("GET", ITEMS + "/" + id + "/history");
  if (!result.ok) { showError(result); return; }
  const ea = state.eas[id];
  const table = h("table", { class: "ea-history" }, result.body.history.map((entry) => h("tr", {},
    h("td", {}, entry.at.slice(0, 19).replace("T", " ")), h("td", {}, t("action_" + entry.action)),
    h("td", {}, entry.user), h("td", {}, entry.reason || ""))));
  L.popup({ maxWidth: 420 }).setLatLng(ea.layer.getBounds().getCenter())
    .setContent(h("div", {}, h("b", {}, ea.feature.properties.code), table)).openOn(map);
}

/* ---- Leaflet.draw ---- */

function addDrawTools() {
  if (state.drawControl) return;
  state.drawControl = new L.Control.Draw({
    position: "topleft",
    draw: { polyline: { shapeOptions: { color: "#c0392b", weight: 3 } },
      polygon: { allowIntersection: false, showArea: true, shapeOptions: { color: "#08306b", weight: 2 } },
      rectangle: false, circle: false, marker: false, circlemarker: false },
    edit: { featureGroup: editable, edit: true, remove: true },
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

map.on(L.Draw.Event.EDITED, async (e) => {
  let last = null;
  for (const layer of e.layers.getLayers()) {
    last = await replaceEa(layer.eaId, layer.toGeoJSON(false).geometry);
    if (!last.ok) break;
  }
  if (last) await afterWrite(last);
  if (state.rejected) showDrawn(state.rejected);
  state.rejected = null;
});

map.on(L.Draw.Event.DELETED, async (e) => {
  let last = null;
  for (const layer of e.layers.getLayers()) {
    last = await deleteEa(layer.eaId);
    if (!last.ok) break;
  }
  state.selected = [];
  if (last) await afterWrite(last);
});

/* ---- messages ---- */

function showError(result) {
  const body = result.body || {};
  const lines = [];
  for (const problem of body.problems || []) {
    lines.push(problem.problem + (problem.area_m2 ? " (" + fmt(problem.area_m2) + " m²)" : ""));
    if (problem.location) marker(problem.location, problem.problem, "#c0392b");
  }
  if (result.status === 412) lines.push(t("stale"));
  showMessage(t("not_saved") + " (" + result.status + "): " + (body.detail || ""), lines, "error");
}

function showMessage(title, lines, kind) {
  state.message = { title, lines, kind };
  const box = panel && panel.querySelector(".ea-message");
  if (box) box.replaceWith(messageBox());
}

function messageBox() {
  const m = state.message;
  if (!m) return h("div", { class: "ea-message", role: "status" });
  return h("div", { class: "ea-message ea-" + m.kind, role: m.kind === "error" ? "alert" : "status" },
    h("b", {}, m.title), m.lines.length ? h("ul", {}, m.lines.map((line) => h("li", {}, line))) : null);
}

/* ---- the panel ---- */

function signInBox() {
  if (state.user) {
    const u = state.user;
    return h("div", { class: "ea-user" }, t("signed_in_as") + ": ", h("b", {}, u.name),
      " (" + t("role_" + u.role) + (u.scope.length ? ", " + u.scope.join(", ") : "") + ") ",
      h("button", { type: "button", class: "ea-sign-out", onclick: signOutNow }, t("sign_out")));
  }
  const input = h("input", { type: "password", name: "token", autocomplete: "off", placeholder: t("token"),
    "aria-label": t("token"), onkeydown: (e) => { if (e.key === "Enter") signInWith(input.value.trim()); } });
  return [h("div", { class: "ea-signin" }, input,
    h("button", { type: "button", class: "ea-sign-in", onclick: () => signInWith(input.value.trim()) }, t("sign_in"))),
  h("div", { class: "ea-hint" }, t("not_signed_in"))];
}

function coverageBox() {
  const c = state.coverage;
  if (!c) return null;
  const row = (label, value, cls) => h("tr", { class: cls }, h("td", {}, label), h("td", {}, String(value)));
  return [h("h4", {}, t("coverage") + " ", h("span", { class: "ea-badge " + (c.complete ? "ea-complete" : "ea-incomplete") },
    c.complete ? t("complete") : t("incomplete"))),
  h("table", { class: "ea-coverage" },
    row(t("eas"), c.eas, "ea-count"),
    row(t("gaps"), c.gaps.length + " (" + fmt(c.gap_share * 100, 2) + " %)", "ea-gaps"),
    row(t("overlaps"), c.overlaps.length, "ea-overlaps"),
    row(t("outside"), c.outside_commune.length, "ea-outside"),
    row(t("workload") + " " + cfg.householdsBand.join("–"), c.outside_workload_band.length, "ea-workload")),
  h("div", { class: "ea-legend" }, Object.entries(cfg.statusColours).map(([status, colour]) =>
    h("span", {}, h("i", { style: { background: colour } }), t("status_" + status))))];
}

function actionButton(action) {
  return h("button", { type: "button", class: "ea-" + action, dataset: { action }, onclick: () => act(action) }, t(action));
}

function selectedBox() {
  if (!state.selected.length) return h("div", { class: "ea-hint" }, t("none_selected"));
  const p = state.eas[state.selected[0]].feature.properties;
  const actions = [];
  if (canEdit() && (p.status === "draft" || p.status === "rejected")) actions.push(actionButton("submit"));
  if (canApprove() && p.status === "submitted") actions.push(actionButton("approve"), actionButton("reject"));
  if (canEdit()) actions.push(actionButton("delete"));
  if (canEdit() && state.selected.length > 1) actions.push(actionButton("merge"));
  actions.push(actionButton("history"));
  return [h("h4", {}, t("selected") + ": ", h("span", { class: "ea-code" }, p.code),
    state.selected.length > 1 ? " +" + (state.selected.length - 1) : ""),
  h("table", {},
    h("tr", {}, h("td", {}, t("status")), h("td", { class: "ea-status" }, t("status_" + p.status))),
    h("tr", {}, h("td", {}, t("households")), h("td", {}, fmt(p.households))),
    h("tr", {}, h("td", {}, t("population")), h("td", {}, fmt(p.population))),
    h("tr", {}, h("td", {}, t("version")), h("td", {}, String(p.version)))),
  h("div", { class: "ea-actions" }, actions),
  canEdit() && state.selected.length === 1 ? h("div", { class: "ea-hint" }, t("draw_split")) : null];
}

function batchBox() {
  if (!canEdit()) return null;
  const statuses = Object.values(state.eas).map((ea) => ea.feature.properties.status);
  const buttons = [];
  if (statuses.length === 0) buttons.push(actionButton("generate"));
  else if (statuses.every((s) => s === "draft")) buttons.push(actionButton("regenerate"));
  if (statuses.includes("draft") || statuses.includes("rejected")) buttons.push(actionButton("submit_all"));
  if (canApprove() && statuses.includes("submitted")) buttons.push(actionButton("approve_all"));
  return h("div", { class: "ea-actions ea-batch" }, buttons);
}

function searchBox() {
  const input = h("input", { name: "q", autocomplete: "off", placeholder: t("find_commune"), "aria-label": t("find_commune"),
    onkeydown: (e) => { if (e.key === "Enter") findCommune(input.value); } });
  return [h("div", { class: "ea-search" }, input,
    h("button", { type: "button", class: "ea-find", onclick: () => findCommune(input.value) }, t("find"))),
  h("div", { class: "ea-results" })];
}

function langLink(lang, label) {
  const params = new URLSearchParams(window.location.search);
  params.set("lang", lang);
  return h("a", { href: "?" + params.toString(), lang }, label);
}

function render() {
  if (!panel) return;
  // a reload finishing while someone types (a token, a commune) must not eat their typing
  const typed = {};
  panel.querySelectorAll("input[name]").forEach((i) => { typed[i.name] = i.value; });
  const focused = panel.contains(document.activeElement) ? document.activeElement.name : null;
  const title = cfg.commune
    ? [h("h3", {}, cfg.commune.name + " ", h("small", {}, "(" + cfg.commune.code + ", " + (cfg.commune.provinceName || cfg.commune.province || "") + ")")),
      h("div", { class: "ea-round" }, t("round") + " " + cfg.round)]
    : [h("h3", {}, t("title")), h("div", { class: "ea-hint" }, t("choose_commune"))];
  fill(panel, title, signInBox(), searchBox(),
    cfg.commune ? [coverageBox(), batchBox(), selectedBox()] : null,
    messageBox(),
    h("div", { class: "ea-lang" }, langLink("vi", "Tiếng Việt"), " · ", langLink("en", "English")));
  panel.querySelectorAll("input[name]").forEach((i) => {
    if (typed[i.name]) i.value = typed[i.name];
    if (i.name === focused) i.focus();
  });
}

async function act(action) {
  if (action === "merge") return mergeSelected();
  if (action === "history") return showHistory(state.selected[0]);
  if (action === "generate" || action === "regenerate") return generate();
  if (action === "submit_all") return transitionAll("draft", "submit");
  if (action === "approve_all") return transitionAll("submitted", "approve");
  return runOnSelected(action);
}

async function signInWith(token) {
  if (!token) return;
  state.token = token;
  const result = await call("GET", "/users/me");
  if (!result.ok) {
    state.token = null;
    render();
    showError(result);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.user = result.body;
  if (canEdit() && cfg.commune) addDrawTools();
  if (tiles) {  // (their requests now carry the token)
    map.removeLayer(tiles);
    addTiles();
  }
  render();
}

function signOutNow() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.user = null;
  removeDrawTools();
  render();
}

async function findCommune(text) {
  if (!text.trim()) return;
  const result = await call("GET", "/collections/commune-" + cfg.vintage + "/items?limit=10&zoom=9" +
    "&properties=code,name,parent_code&q=" + encodeURIComponent(text));
  const box = panel.querySelector(".ea-results");
  if (!result.ok || !result.body.features.length) { fill(box, t("no_match")); return; }
  fill(box, result.body.features.map((f) => {
    const params = new URLSearchParams({ commune: f.id, round: cfg.round, lang: cfg.lang });
    return h("a", { class: "ea-hit", href: "?" + params.toString() }, f.properties.name + " (" + f.id + ")");
  }));
}

function addPanel() {
  const control = L.control({ position: "topright" });
  control.onAdd = () => {
    panel = L.DomUtil.create("div", "gv-controls ea-panel");
    L.DomEvent.disableClickPropagation(panel);
    L.DomEvent.disableScrollPropagation(panel);
    return panel;
  };
  control.addTo(map);
}

window.eaEditor = {
  map, ready: false, lastResult: null, writes: [], settled: 0, coverage: null, tileLoads: 0,
  eas: () => Object.values(state.eas).map((ea) => ({ id: ea.feature.id, code: ea.feature.properties.code,
    status: ea.feature.properties.status, etag: ea.etag })),
  selected: () => state.selected.slice(),
  select: (id, add) => select(id, add),
  findings: () => findings.getLayers().length,
  tileCodes: () => [...tileCodes],
  user: () => state.user,
};

async function start() {
  localiseDraw(t);
  map.fitBounds(cfg.bounds);
  addPanel();
  render();
  if (state.token) await signInWith(state.token);
  if (cfg.commune) {
    addTiles();
    await addCommuneOutline();
    await reload();
  }
  window.eaEditor.ready = true;
}
start();
