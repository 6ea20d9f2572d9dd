/* The enumeration-area editor: one commune's EAs, drawn, edited, split, merged, submitted and
   approved through the API with the user's token; rule problems are shown on the map.
   The page (built with Folium) holds its settings as JSON in #ea-editor-config; text from
   data reaches the page only through geoSafe (safe.js). */
(function () {
  "use strict";
  const cfg = window.geoSafe.config("ea-editor-config");
  const escape = window.geoSafe.escape;
  const map = window[cfg.mapName];
  const t = (key) => (cfg.labels[key] || key);
  const ITEMS = cfg.api + "/collections/enumeration-areas/items";
  const TOKEN_KEY = "geoServiceToken";
  const RANK = { viewer: 0, editor: 1, supervisor: 2, admin: 3 };

  const state = { token: sessionStorage.getItem(TOKEN_KEY), user: null, eas: {}, selected: [],
                  coverage: null, drawControl: null, message: null,
                  rejected: null };
  const editable = L.featureGroup().addTo(map);
  const findings = L.featureGroup().addTo(map);
  const gaps = L.featureGroup().addTo(map);
  let tiles = null;
  const tileCodes = new Set();  // EA codes drawn from the tiles since the last redraw
  let panel = null;

  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    return Number(value).toLocaleString(cfg.lang === "vi" ? "vi-VN" : "en-GB",
      { maximumFractionDigits: digits === undefined ? 0 : digits });
  }

  /* One API call; the answer is recorded for the panel and for tests. */
  async function call(method, path, options) {
    const opts = options || {};
    const headers = {};
    if (state.token) headers.Authorization = "Bearer " + state.token;
    if (opts.etag) headers["If-Match"] = opts.etag;
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    } catch (err) {
      return record(method, path, { ok: false, status: 0, body: { detail: String(err) }, etag: null });
    }
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (err) { body = { detail: text }; }
    return record(method, path, { ok: response.ok, status: response.status, body,
                                  etag: response.headers.get("ETag") });
  }

  function record(method, path, result) {
    window.eaEditor.lastResult = result;
    if (method !== "GET") window.eaEditor.writes.push({ method, path, status: result.status, body: result.body });
    return result;
  }

  /* ---- the map layers ---- */

  function statusStyle(status, selected) {
    return { color: selected ? "#08306b" : "#333", weight: selected ? 3 : 1,
             fill: true, fillColor: cfg.statusColours[status] || "#ccc",
             fillOpacity: selected ? 0.35 : 0.08 };
  }

  function addTiles() {
    const url = cfg.api + "/collections/enumeration-areas/tiles/WebMercatorQuad/{z}/{x}/{y}?round=" +
      cfg.round;
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
    const url = cfg.api + "/collections/commune-" + cfg.vintage + "/items/" + cfg.commune.code;
    const result = await call("GET", url);
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
    layer.bindTooltip(() => escape(feature.properties.code + " · " +
      t("status_" + feature.properties.status) + " · " + fmt(feature.properties.households) + " hh"),
      { sticky: true });
    layer.on("click", (e) => {
      L.DomEvent.stopPropagation(e);
      select(feature.id, e.originalEvent && e.originalEvent.shiftKey);
    });
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
      state.selected = state.selected.includes(id) ? state.selected.filter((s) => s !== id)
        : state.selected.concat([id]);
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
    return list.map((w) => w.warning || JSON.stringify(w));
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

  async function replaceEa(id, geometry) {
    const ea = state.eas[id];
    const body = { type: "Feature", geometry, properties: { reason: "edited on the map" } };
    const result = await call("PUT", ITEMS + "/" + id, { body, etag: ea.etag });
    if (!result.ok) state.rejected = geometry;
    return result;
  }

  async function deleteEa(id) {
    const ea = state.eas[id];
    return call("DELETE", ITEMS + "/" + id, { etag: ea.etag });
  }

  async function transition(id, action, reason) {
    const ea = state.eas[id];
    const query = reason ? "?reason=" + encodeURIComponent(reason) : "";
    return call("POST", ITEMS + "/" + id + "/" + action + query, { etag: ea.etag });
  }

  async function splitSelected(line) {
    const id = state.selected[0];
    const ea = state.eas[id];
    return call("POST", ITEMS + "/" + id + "/split", { body: { line, reason: "split on the map" },
                                                       etag: ea.etag });
  }

  async function mergeSelected() {
    const ids = state.selected.slice();
    const etags = ids.map((id) => state.eas[id].etag).join(", ");
    const result = await call("POST", cfg.api + "/collections/enumeration-areas/merge",
                              { body: { ids, reason: "merged on the map" }, etag: etags });
    if (result.ok) state.selected = [result.body.id];
    await afterWrite(result);
  }

  async function generate() {
    const replace = Object.keys(state.eas).length > 0;
    const url = cfg.api + "/communes/" + cfg.commune.code + "/ea-generate?round=" + cfg.round +
      "&vintage=" + cfg.vintage + (replace ? "&replace=true" : "");
    const result = await call("POST", url);
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
    const rows = result.body.history.map((h) => "<tr><td>" + escape(h.at.slice(0, 19).replace("T", " ")) +
      "</td><td>" + escape(h.action) + "</td><td>" + escape(h.user) + "</td><td>" + escape(h.reason || "") +
      "</td></tr>").join("");
    const ea = state.eas[id];
    L.popup({ maxWidth: 420 }).setLatLng(ea.layer.getBounds().getCenter())
      .setContent("<b>" + escape(ea.feature.properties.code) + "</b><table class='ea-history'>" + rows +
                  "</table>").openOn(map);
  }

  /* ---- Leaflet.draw ---- */

  function addDrawTools() {
    if (state.drawControl) return;
    state.drawControl = new L.Control.Draw({
      position: "topleft",
      draw: { polyline: { shapeOptions: { color: "#c0392b", weight: 3 } },
              polygon: { allowIntersection: false, showArea: true,
                         shapeOptions: { color: "#08306b", weight: 2 } },
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
    if (box) box.outerHTML = messageHtml();
  }

  function messageHtml() {
    const m = state.message;
    if (!m) return "<div class='ea-message'></div>";
    return "<div class='ea-message ea-" + m.kind + "'><b>" + escape(m.title) + "</b>" +
      (m.lines.length ? "<ul>" + m.lines.map((l) => "<li>" + escape(l) + "</li>").join("") + "</ul>" : "") +
      "</div>";
  }

  /* ---- the panel ---- */

  function signInHtml() {
    if (state.user) {
      return "<div class='ea-user'>" + t("signed_in_as") + ": <b>" + escape(state.user.name) + "</b> (" +
        escape(state.user.role) + (state.user.scope.length ? ", " + escape(state.user.scope.join(", ")) : "") +
        ") <button class='ea-sign-out'>" + t("sign_out") + "</button></div>";
    }
    return "<div class='ea-signin'><input type='password' name='token' autocomplete='off' placeholder='" +
      t("token") + "'><button class='ea-sign-in'>" + t("sign_in") + "</button></div>" +
      "<div class='ea-hint'>" + t("not_signed_in") + "</div>";
  }

  function coverageHtml() {
    const c = state.coverage;
    if (!c) return "";
    const row = (label, value, cls) => "<tr class='" + cls + "'><td>" + label + "</td><td>" + value + "</td></tr>";
    return "<h4>" + t("coverage") + " <span class='ea-badge " + (c.complete ? "ea-complete'>" + t("complete")
      : "ea-incomplete'>" + t("incomplete")) + "</span></h4><table class='ea-coverage'>" +
      row(t("eas"), c.eas, "ea-count") +
      row(t("gaps"), c.gaps.length + " (" + fmt(c.gap_share * 100, 2) + " %)", "ea-gaps") +
      row(t("overlaps"), c.overlaps.length, "ea-overlaps") +
      row(t("outside"), c.outside_commune.length, "ea-outside") +
      row(t("workload") + " " + cfg.householdsBand.join("–"), c.outside_workload_band.length, "ea-workload") +
      "</table>" + legendHtml();
  }

  function legendHtml() {
    return "<div class='ea-legend'>" + Object.entries(cfg.statusColours).map(([status, colour]) =>
      "<span><i style='background:" + colour + "'></i>" + t("status_" + status) + "</span>").join("") + "</div>";
  }

  function selectedHtml() {
    if (!state.selected.length) return "<div class='ea-hint'>" + t("none_selected") + "</div>";
    const ea = state.eas[state.selected[0]];
    const p = ea.feature.properties;
    let html = "<h4>" + t("selected") + ": <span class='ea-code'>" + escape(p.code) + "</span>" +
      (state.selected.length > 1 ? " +" + (state.selected.length - 1) : "") + "</h4>" +
      "<table><tr><td>" + t("status") + "</td><td class='ea-status'>" + t("status_" + p.status) + "</td></tr>" +
      "<tr><td>" + t("households") + "</td><td>" + fmt(p.households) + "</td></tr>" +
      "<tr><td>" + t("population") + "</td><td>" + fmt(p.population) + "</td></tr>" +
      "<tr><td>" + t("version") + "</td><td>" + p.version + "</td></tr></table><div class='ea-actions'>";
    if (canEdit() && (p.status === "draft" || p.status === "rejected")) html += button("submit");
    if (canApprove() && p.status === "submitted") html += button("approve") + button("reject");
    if (canEdit()) html += button("delete");
    if (canEdit() && state.selected.length > 1) html += button("merge");
    html += button("history") + "</div>";
    if (canEdit() && state.selected.length === 1) html += "<div class='ea-hint'>" + t("draw_split") + "</div>";
    return html;
  }

  function batchHtml() {
    if (!canEdit()) return "";
    const statuses = Object.values(state.eas).map((ea) => ea.feature.properties.status);
    let html = "<div class='ea-actions ea-batch'>";
    if (statuses.length === 0) html += button("generate");
    else if (statuses.every((s) => s === "draft")) html += button("regenerate");
    if (statuses.includes("draft") || statuses.includes("rejected")) html += button("submit_all");
    if (canApprove() && statuses.includes("submitted")) html += button("approve_all");
    return html + "</div>";
  }

  function button(action) {
    return "<button class='ea-" + action + "' data-action='" + action + "'>" + t(action) + "</button>";
  }

  function searchHtml() {
    return "<div class='ea-search'><input name='q' autocomplete='off' placeholder='" + t("find_commune") +
      "'><button class='ea-find'>" + t("find") + "</button></div><div class='ea-results'></div>";
  }

  function render() {
    if (!panel) return;
    const title = cfg.commune
      ? "<h3>" + escape(cfg.commune.name) + " <small>(" + escape(cfg.commune.code) + ", " +
        escape(cfg.commune.provinceName || cfg.commune.province || "") + ")</small></h3><div class='ea-round'>" +
        t("round") + " " + escape(cfg.round) + "</div>"
      : "<h3>" + t("title") + "</h3><div class='ea-hint'>" + t("choose_commune") + "</div>";
    // a reload finishing while someone types (a token, a commune) must not eat their typing
    const typed = {};
    panel.querySelectorAll("input[name]").forEach((i) => { typed[i.name] = i.value; });
    const focused = panel.contains(document.activeElement) ? document.activeElement.name : null;
    panel.innerHTML = title + signInHtml() + searchHtml() +
      (cfg.commune ? coverageHtml() + batchHtml() + selectedHtml() : "") +
      messageHtml() +
      "<div class='ea-lang'><a href='?" + langLink("vi") + "'>Tiếng Việt</a> · <a href='?" + langLink("en") +
      "'>English</a></div>";
    panel.querySelectorAll("input[name]").forEach((i) => {
      if (typed[i.name]) i.value = typed[i.name];
      if (i.name === focused) i.focus();
    });
    wirePanel();
  }

  function langLink(lang) {
    const params = new URLSearchParams(window.location.search);
    params.set("lang", lang);
    return params.toString();
  }

  function wirePanel() {
    const signIn = panel.querySelector(".ea-sign-in");
    if (signIn) {
      const input = panel.querySelector("input[name=token]");
      const go = () => signInWith(input.value.trim());
      signIn.addEventListener("click", go);
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
    }
    const signOut = panel.querySelector(".ea-sign-out");
    if (signOut) signOut.addEventListener("click", signOutNow);
    const q = panel.querySelector("input[name=q]");
    const find = () => findCommune(q.value);
    q.addEventListener("keydown", (e) => { if (e.key === "Enter") find(); });
    panel.querySelector(".ea-find").addEventListener("click", find);
    panel.querySelectorAll("button[data-action]").forEach((b) => b.addEventListener("click", () => act(b.dataset.action)));
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
    const result = await call("GET", cfg.api + "/users/me");
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
                                                        status: ea.feature.properties.status,
                                                        etag: ea.etag })),
    selected: () => state.selected.slice(),
    select: (id, add) => select(id, add),
    findings: () => findings.getLayers().length,
    tileCodes: () => [...tileCodes],
    user: () => state.user,
  };

  async function start() {
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
})();
