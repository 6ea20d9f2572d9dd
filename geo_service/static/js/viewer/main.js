/* The map viewer: a choropleth of an indicator over geometry-only tiles, coloured in the page
   from a compact table of values, with search, classification scopes, a unit's chart, change
   maps, a ranking table, drawn-area statistics and the indicator's metadata. Every choice,
   the map's centre and zoom and the selected unit live in the URL. */
import { config, h, fill } from "../dom.js";
import { createApi } from "../api.js";
import { createI18n } from "../i18n.js";
import { viewerJobs } from "./report.js";
import { createUrlState } from "../state.js";
import { createCatalogue, URL_KEYS } from "./catalogue.js";
import { addPanes, addPatterns, createChoropleth, createOutlines, NO_VALUE_FILL } from "./layers.js";
import { createLabels } from "./labels.js";
import { createPanel } from "./panel.js";
import { createLegend } from "./legend.js";
import { createBaseLayers } from "./basemaps.js";

const cfg = config("geo-viewer-config");
const i18n = createI18n(cfg.texts, cfg.lang);
const { t, pick } = i18n;
// with private reads a signed-in user's token (kept by the EA editor's sign-in for this tab)
// goes with every API call and tile request of the page
const TOKEN_KEY = "geoServiceToken";
const token = () => (cfg.privateReads ? sessionStorage.getItem(TOKEN_KEY) : null);
const api = createApi(cfg.api, cfg.lang, { token });
const cat = createCatalogue(cfg, i18n);
const url = createUrlState(URL_KEYS);
const map = window[cfg.mapName];
document.documentElement.lang = cfg.lang;
// (Leaflet titles its zoom buttons in English; screen readers read them aloud)
for (const [side, key] of [["in", "zoom_in"], ["out", "zoom_out"]]) {
  const button = map.getContainer().querySelector(".leaflet-control-zoom-" + side);
  if (button) { button.title = t(key); button.setAttribute("aria-label", t(key)); }
}

const app = {
  cfg, i18n, api, cat, map, url, token,
  state: null,
  values: null, // the compact value table of the current map
  lookup: new Map(), // code → [value, status]
  classes: null, // /maps/choropleth of the current map
  scopeCodes: null, // codes classified (null: all)
  tables: {}, // collection → unit table (/maps/units)
  notices: [],
  problem: null, // a refused choice (manual breaks), shown where it was made
  selected: null, // {code, level, name, ...}
  listeners: [],
};

function collectionOf(level, vintage) { return level + "-" + (vintage || app.state.vintage); }
app.collection = () => collectionOf(app.state.level);
app.series = () => cat.series(app.state.vintage, app.state.level, app.state.indicator);
app.on = (fn) => app.listeners.push(fn);
function emit(what) { for (const fn of app.listeners) fn(what); }

/* ---- colours ---- */

/* A number as the value table keeps it (`precision` decimals, or two significant digits
   where those would make it zero; geo_service/viewer/data.py `compact`). Class limits are
   compared in the same form: a unit whose value is a class's limit (quantiles and natural
   breaks end at a value) would otherwise round past it into the next class, and a decrease
   smaller than the precision would be drawn with the increases. */
function compact(value, precision) {
  if (precision === undefined || precision === null) return value;
  const rounded = Math.round(value * 10 ** precision) / 10 ** precision;
  return rounded === 0 && value !== 0 ? Number(value.toPrecision(2)) : rounded;
}

function classColour(value) {
  const classes = (app.classes && app.classes.classes) || [];
  const precision = app.values ? app.values.precision : undefined;
  for (const c of classes) if (value <= compact(c.upper, precision)) return c.colour;
  return classes.length ? classes[classes.length - 1].colour : "#cccccc";
}

app.colourOf = (code) => {
  const entry = app.lookup.get(code);
  if (!entry) return NO_VALUE_FILL.not_available;
  const [value, status] = entry;
  if (value === null || (status !== "ok" && status !== "provisional")) return NO_VALUE_FILL[status] || NO_VALUE_FILL.not_available;
  return classColour(value);
};

function unitStyle(code, props, zoom) {
  const inScope = !app.scopeCodes || app.scopeCodes.has(code);
  const fine = app.state.level !== "province";
  const weight = fine ? (zoom >= 11 ? 0.9 : zoom >= 9 ? 0.6 : 0.25) : 0.9;
  return {
    fill: true, fillColor: inScope ? app.colourOf(code) : "#e9e6df", fillOpacity: inScope ? 0.88 : 0.55,
    color: "#ffffff", weight, opacity: fine && zoom < 8 ? 0.6 : 1,
  };
}

/* ---- data ---- */

const valueCache = new Map();

async function loadValues() {
  const st = app.state;
  const params = { collection: app.collection(), indicator: st.indicator, period: st.period,
    compare: st.compare, compare_vintage: st.cv, change: st.compare ? st.change : null };
  const key = JSON.stringify(params);
  let table = valueCache.get(key);
  if (!table) {
    table = await api.latest("values", "/maps/values", params);
    // (values withheld while re-checked are asked for again shortly, never kept)
    if (!table.rechecking) valueCache.set(key, table);
  }
  app.values = table;
  app.lookup = new Map();
  const statusOf = new Map();
  for (const [status, codes] of Object.entries(table.status)) for (const c of codes) statusOf.set(c, status);
  table.codes.forEach((code, i) => app.lookup.set(code, [table.values[i], statusOf.get(code) || "ok"]));
}

function viewBox() {
  const b = map.getBounds();
  return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(4)).join(",");
}

async function loadClasses() {
  const st = app.state;
  const params = { collection: app.collection(), indicator: st.indicator, period: st.period,
    method: st.method, k: st.k, palette: st.palette,
    breaks: st.method === "manual" ? st.breaks : null,
    compare: st.compare, compare_vintage: st.cv, change: st.compare ? st.change : null,
    within: st.scope === "province" ? st.within : null, bbox: st.scope === "view" ? viewBox() : null };
  try {
    app.classes = await api.latest("classes", "/maps/choropleth", params);
    app.classParams = params; // (the export asks for exactly these classes)
    app.problem = null;
  } catch (err) {
    if (err.name === "AbortError") throw err;
    if (err.parameter === "breaks" || err.parameter === "within") {
      // a refused choice: said where it was made, the map keeps a valid classification
      app.problem = { parameter: err.parameter, message: err.message };
      app.state = { ...app.state, method: err.parameter === "breaks" ? "quantiles" : st.method,
        scope: err.parameter === "within" ? "all" : st.scope, within: err.parameter === "within" ? null : st.within };
      return loadClasses().then(() => { app.problem = { parameter: err.parameter, message: err.message }; });
    }
    throw err;
  }
  app.scopeCodes = null;
  if (st.scope !== "all") {
    const table = app.tables[app.collection()];
    if (st.scope === "province" && table) {
      app.scopeCodes = new Set(table.codes.filter((c, i) => table.parents[i] === st.within));
    }
  }
}

const tableRequests = {};
async function unitTable(collection) {
  if (!tableRequests[collection]) {
    tableRequests[collection] = api.get("/maps/units", { collection }).then((table) => {
      app.tables[collection] = table;
      emit("units"); // names and parents for the table, the hover card, the scope
      return table;
    });
    tableRequests[collection].catch(() => { delete tableRequests[collection]; });
  }
  return tableRequests[collection];
}
app.unitTable = unitTable;

/* ---- applying a change ---- */

let version = 0;

/* Apply a change of choices: new tiles only when the units change, new values only when the
   indicator, period or comparison change, new classes whenever the classification does. */
app.set = async (changes, options) => {
  const opts = options || {};
  const before = app.state;
  const { state, notices } = cat.resolve({ ...(before || cfg.params), ...changes });
  app.state = state;
  if (notices.length) app.notices = opts.keepNotices ? [...app.notices, ...notices] : notices;
  else if (!opts.keepNotices) app.notices = [];
  const mine = ++version;
  const collectionChanged = !before || before.vintage !== state.vintage || before.level !== state.level;
  if (collectionChanged) showCollection();
  emit("state");
  try {
    // the unit table (names, parents, label points) is needed first only to know a
    // province's units; otherwise it comes beside the values and classes
    // (until the first map is drawn only a province scope waits for it: the commune table is
    // 200 KB the first colouring does not need, fetched once the map is ready)
    if (state.scope === "province") await unitTable(app.collection());
    else if (!app.deferTables) unitTable(app.collection()).catch(() => {});
    await Promise.all([loadValues(), loadClasses()]);
  } catch (err) {
    if (err.name === "AbortError") return;
    // a refused read says what to do, never leaves a blank map without a word
    app.notices = err.status === 401 ? [t("needs_sign_in"), err.message] : [err.message];
  }
  if (mine !== version) return;
  app.choropleth.restyle(unitStyle);
  window.geoViewer.recoloured += 1;
  if (!opts.silent) writeUrl(true);
  emit("data");
  recheckLater(mine);
};

/* Values withheld while their disclosure protection is re-checked come back within seconds:
   ask again after the time the service says, unless the map changed meanwhile. */
let recheckTimer = null;
function recheckLater(mine) {
  clearTimeout(recheckTimer);
  const note = (app.values && app.values.rechecking) || (app.classes && app.classes.rechecking);
  if (!note) return;
  recheckTimer = setTimeout(() => { if (mine === version) app.set({}, { silent: true, keepNotices: true }); },
    1000 * (note.retry_after || 5));
}

function showCollection() {
  const st = app.state;
  app.choropleth.show(app.collection(), st.level);
  const levels = cat.vintage(st.vintage).levels.map((l) => l.id);
  const upper = levels[0] !== st.level ? collectionOf(levels[0]) : null;
  app.outlines[app.layerOn("boundaries") && upper ? "show" : "hide"](upper);
  refreshLabels();
}

async function refreshLabels() {
  if (app.deferTables) return; // (names come once the first map is drawn)
  const st = app.state;
  const levels = cat.vintage(st.vintage).levels.map((l) => l.id);
  const sets = [];
  for (const level of levels) {
    if (levels.indexOf(level) > levels.indexOf(st.level)) continue;
    const table = await unitTable(collectionOf(level)).catch(() => null);
    const upper = level !== st.level;
    // a name is shown once the largest circle inside its unit is about half as wide as the
    // name (the circle is far smaller than most units)
    sets.push({ table, className: upper ? "gv-label-upper" : "gv-label-unit", rank: upper ? 0 : 1, fit: upper ? 0.3 : 0.45 });
  }
  app.labels.setTables(sets);
  app.labels.hidden(!app.layerOn("labels"));
}
app.refreshLabels = refreshLabels;

app.layerOn = (name) => (app.state.layers || "").split(",").includes(name);
app.toggleLayer = (name, on) => {
  const layers = new Set((app.state.layers || "").split(",").filter(Boolean));
  if (on) layers.add(name); else layers.delete(name);
  app.state = { ...app.state, layers: [...layers].join(",") || "none" };
  showCollection();
  app.base.update();
  writeUrl(true);
};

/* ---- the URL ---- */

function writeUrl(push) {
  const c = map.getCenter();
  url.write({ ...app.state, lat: c.lat.toFixed(4), lng: c.lng.toFixed(4), z: map.getZoom(),
    unit: app.selected ? app.selected.code : null,
    layers: app.state.layers === "boundaries,labels,roads" ? null : app.state.layers }, push);
}
app.writeUrl = writeUrl;

map.on("moveend", () => {
  if (!app.state) return;
  writeUrl(false);
  if (app.state.scope === "view") app.set({}, { silent: true });
  emit("view");
});

url.onBack((raw) => { app.set({ ...raw, layers: raw.layers || "boundaries,labels,roads" }, { silent: true }); });

/* ---- selection ---- */

app.select = async (code, options) => {
  const opts = options || {};
  if (!code) {
    app.selected = null;
    app.labels.select(null);
    await app.choropleth.highlight(null, null);
    writeUrl(true);
    emit("selection");
    return;
  }
  const level = opts.level || app.state.level;
  const collection = collectionOf(level);
  let feature;
  try {
    feature = await app.choropleth.highlight(collection, code);
  } catch (err) {
    app.notices = [t("notice_unit", { given: code })];
    emit("state");
    return;
  }
  const table = await unitTable(collection).catch(() => null);
  const i = table ? table.codes.indexOf(code) : -1;
  app.selected = { code, level, name: feature.properties.name,
    type: table && i >= 0 ? table.types[i] : null,
    parent: table && i >= 0 ? table.parents[i] : null,
    parentName: table && i >= 0 ? table.parentNames[table.parents[i]] || null : null };
  if (table && i >= 0) {
    const [lng, lat] = table.labels[i];
    app.labels.select({ code, lat, lng, name: app.selected.name });
  }
  writeUrl(true);
  app.keepTab = Boolean(opts.keepTab);
  emit("selection");
  app.keepTab = false;
  // framed once the selection has opened the panel (on a phone it then covers the lower part)
  if (opts.fit) app.fit(opts.bbox || L.geoJSON(feature).getBounds());
  // on a phone the panel opened over the map's lower part: keep the unit in sight above it
  if (!opts.fit && table && i >= 0) {
    const cover = app.panel.covered();
    if (cover.bottom) map.panInside([table.labels[i][1], table.labels[i][0]], { paddingBottomRight: [20, cover.bottom + 30], paddingTopLeft: [20, 20] });
  }
  window.geoViewer.lastSelected = code;
};

/* Frame a bbox ([w, s, e, n] or LatLngBounds) in the part of the map not under the panel. */
app.fit = (bbox) => {
  const bounds = Array.isArray(bbox) ? L.latLngBounds([bbox[1], bbox[0]], [bbox[3], bbox[2]]) : bbox;
  const cover = app.panel.covered();
  map.fitBounds(bounds, { paddingTopLeft: [20 + cover.left, 20], paddingBottomRight: [20, 20 + cover.bottom], maxZoom: 13 });
};

/* ---- start ---- */

addPatterns();
addPanes(map);
app.choropleth = createChoropleth(map, api, {
  hover: (props, latlng) => app.panel.hover(props, latlng),
  leave: () => app.panel.leave(),
  click: (props) => app.select(props.code),
  loaded: () => { window.geoViewer.tilesLoaded = true; emit("tiles"); },
});
app.outlines = createOutlines(map, api);
app.labels = createLabels(map);
app.base = createBaseLayers(app);
app.panel = createPanel(app);
app.legend = createLegend(app);

window.geoViewer = {
  map, app, config: cfg, ready: false, tilesLoaded: false, recoloured: 0, lastSelected: null,
  lastAggregate: null, lastZoomed: null,
  drawnCount: () => app.choropleth.drawnCount(),
  fillOf: (code) => app.colourOf(code),
  colourOf: (code) => app.colourOf(code),
  state: () => app.state,
  set: (changes) => app.set(changes),
};

async function start() {
  const { state } = cat.resolve(cfg.params);
  app.notices = [...cfg.notices];
  // ready: values and classes in, the first tiles drawn (whatever comes after)
  const tiles = new Promise((done) => {
    if (window.geoViewer.tilesLoaded) done();
    else app.on((what) => { if (what === "tiles") done(); });
  });
  app.deferTables = true;
  const focus = cat.vintage(state.vintage);
  if (state.lat !== null && state.lng !== null && state.z !== null) map.setView([state.lat, state.lng], state.z);
  else if (focus) app.fit(focus.focus);
  await app.set(cfg.params, { keepNotices: true, silent: true });
  app.base.update();
  writeUrl(false);
  await tiles;
  window.geoViewer.ready = true;
  emit("ready");
  // the area reports this browser had made in the background: their cards again
  if (localStorage.getItem("geoViewerJobs")) viewerJobs(app).resume();
  app.deferTables = false;
  refreshLabels();
  // a shared link's unit is selected again; a link naming its tab stays on it
  if (state.unit) await app.select(state.unit, { fit: state.lat === null, keepTab: Boolean(cfg.params.tab) });
}

start();
