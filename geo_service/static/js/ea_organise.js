/* Organising a commune's EAs in bulk, on the EA editor's Organise tab: select EAs by
   dragging a box or drawing a lasso on the map (finger or mouse), or all EAs without a
   supervisor area or an enumerator; the selection's count and households stay in sight on
   the map. Supervisor areas and assignments are proposed by the service, previewed on the
   map and in the panel, and saved only after a confirmation. Text from data reaches the
   page only escaped (geoSafe). */

const PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d",
  "#1f78b4", "#b2df8a", "#fb9a99", "#cab2d6", "#6a3d9a"];
const MIN_DRAG_PX = 8;  // a shorter gesture is a tap (it selects one EA, as ever)

/* Whether the point is inside the ring (pixels; even-odd rule). */
function inside(point, ring) {
  let hit = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const a = ring[i];
    const b = ring[j];
    if ((a.y > point.y) !== (b.y > point.y) &&
        point.x < ((b.x - a.x) * (point.y - a.y)) / (b.y - a.y) + a.x) hit = !hit;
  }
  return hit;
}

function crosses(p1, p2, q1, q2) {
  const side = (a, b, c) => Math.sign((b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x));
  return side(p1, p2, q1) !== side(p1, p2, q2) && side(q1, q2, p1) !== side(q1, q2, p2);
}

/* Whether a polygon (rings of pixels) and a box meet: a vertex of one inside the other, or
   two edges crossing. */
function meetsBox(rings, box) {
  const corners = [box.min, { x: box.max.x, y: box.min.y }, box.max, { x: box.min.x, y: box.max.y }];
  const inBox = (p) => p.x >= box.min.x && p.x <= box.max.x && p.y >= box.min.y && p.y <= box.max.y;
  if (rings.some((ring) => ring.some(inBox))) return true;
  if (corners.some((c) => rings.filter((ring) => inside(c, ring)).length % 2 === 1)) return true;
  for (const ring of rings) {
    for (let i = 0; i < ring.length; i += 1) {
      const a = ring[i];
      const b = ring[(i + 1) % ring.length];
      for (let k = 0; k < 4; k += 1) if (crosses(a, b, corners[k], corners[(k + 1) % 4])) return true;
    }
  }
  return false;
}

/* The rings of a Leaflet polygon's lat/lngs (Polygon or MultiPolygon nesting), flattened. */
function ringsOf(latlngs) {
  if (!Array.isArray(latlngs) || !latlngs.length) return [];
  if (!Array.isArray(latlngs[0])) return [latlngs];
  return latlngs.flatMap(ringsOf);
}

export function createOrganiser(ctx) {
  const { map, cfg, t, escape, fmt } = ctx;
  const preview = L.featureGroup().addTo(map);
  const own = {
    mode: null, drag: null, areas: null, assignments: null, stale: false,
    band: cfg.areaBand.slice(), onlySelection: true, redo: false,
  };
  let badge = null;

  /* ---- what is selected ---- */

  function households(ids) {
    const eas = ctx.eas();
    return ids.reduce((sum, id) => sum + (eas[id] ? Number(eas[id].feature.properties.households) || 0 : 0), 0);
  }

  function summaryText() {
    const ids = ctx.selected();
    return t("selection_summary", { count: fmt(ids.length), households: fmt(households(ids)) });
  }

  function idsOfCodes(codes) {
    const wanted = new Set(codes);
    return Object.values(ctx.eas()).filter((ea) => wanted.has(ea.feature.properties.code)).map((ea) => ea.feature.id);
  }

  function replace(ids) {
    ctx.setSelected(ids);
  }

  function add(ids) {
    const now = ctx.selected();
    ctx.setSelected(now.concat(ids.filter((id) => !now.includes(id))));
  }

  /* ---- the map: the badge, and selecting by box or lasso ---- */

  function addBadge() {
    const control = L.control({ position: "topleft" });
    control.onAdd = () => {
      const box = L.DomUtil.create("div", "gv-controls ea-selection-badge");
      L.DomEvent.disableClickPropagation(box);
      box.hidden = true;
      return box;
    };
    control.addTo(map);
    badge = control.getContainer();
  }

  /* The badge: the selection's count and households, and the mode's hint with its "done". */
  function update() {
    if (!badge) return;
    const ids = ctx.selected();
    badge.hidden = !ids.length && !own.mode;
    badge.textContent = "";
    const line = L.DomUtil.create("div", "ea-selection-summary", badge);
    line.textContent = summaryText();
    if (own.mode) {
      const hint = L.DomUtil.create("div", "ea-hint", badge);
      hint.textContent = t(own.mode === "rect" ? "select_rect_on" : "select_lasso_on");
      const done = L.DomUtil.create("button", "ea-select-done", badge);
      done.type = "button";
      done.textContent = t("select_done");
      done.addEventListener("click", () => setMode(null));
    }
  }

  function setMode(mode) {
    own.mode = own.mode === mode ? null : mode;
    const container = map.getContainer();
    if (own.mode) {
      map.dragging.disable();
      map.doubleClickZoom.disable();
      container.style.touchAction = "none";  // (the finger draws; the page must not scroll)
      container.classList.add("ea-selecting");
      ctx.setMulti(true);  // (a tap then adds an EA too)
    } else {
      map.dragging.enable();
      map.doubleClickZoom.enable();
      container.style.touchAction = "";
      container.classList.remove("ea-selecting");
    }
    update();
    ctx.render();
  }

  function onDown(e) {
    if (!own.mode || !e.isPrimary || own.drag) return;
    if (e.target.closest && e.target.closest(".leaflet-control")) return;
    const at = map.mouseEventToContainerPoint(e);
    own.drag = { id: e.pointerId, points: [at], moved: false,
      shape: L.polygon([], { interactive: false, color: "#08306b", weight: 2, dashArray: "5 4",
        fillColor: "#6baed6", fillOpacity: 0.15 }).addTo(map) };
    map.getContainer().setPointerCapture(e.pointerId);
    e.preventDefault();
  }

  function onMove(e) {
    const drag = own.drag;
    if (!drag || e.pointerId !== drag.id) return;
    const at = map.mouseEventToContainerPoint(e);
    if (!drag.moved && at.distanceTo(drag.points[0]) < MIN_DRAG_PX) return;
    drag.moved = true;
    if (own.mode === "rect") drag.points = [drag.points[0], at];
    else drag.points.push(at);
    const corners = own.mode === "rect" ? boxCorners(drag.points[0], at) : drag.points;
    drag.shape.setLatLngs(corners.map((p) => map.containerPointToLatLng(p)));
    e.preventDefault();
  }

  function onUp(e) {
    const drag = own.drag;
    if (!drag || e.pointerId !== drag.id) return;
    own.drag = null;
    map.removeLayer(drag.shape);
    if (!drag.moved) return;  // a tap: the EA's own click handler selects it
    own.swallowClick = true;  // (the click that ends a drag must not select the EA under it)
    setTimeout(() => { own.swallowClick = false; }, 400);
    add(own.mode === "rect" ? touchedBy(drag.points[0], drag.points[1]) : centredIn(drag.points));
  }

  function boxCorners(a, b) {
    return [a, L.point(b.x, a.y), b, L.point(a.x, b.y)];
  }

  function pixelRings(layer) {
    return ringsOf(layer.getLatLngs()).map((ring) => ring.map((ll) => map.latLngToContainerPoint(ll)));
  }

  function touchedBy(a, b) {
    const box = L.bounds(a, b);
    return Object.values(ctx.eas()).filter((ea) => meetsBox(pixelRings(ea.layer), box)).map((ea) => ea.feature.id);
  }

  function centredIn(points) {
    if (points.length < 3) return [];
    return Object.values(ctx.eas())
      .filter((ea) => inside(map.latLngToContainerPoint(ea.layer.getCenter()), points))
      .map((ea) => ea.feature.id);
  }

  const container = map.getContainer();
  container.addEventListener("pointerdown", onDown, true);
  container.addEventListener("pointermove", onMove, true);
  container.addEventListener("pointerup", onUp, true);
  container.addEventListener("pointercancel", (e) => {
    if (own.drag && e.pointerId === own.drag.id) { map.removeLayer(own.drag.shape); own.drag = null; }
  }, true);
  container.addEventListener("click", (e) => {
    if (!own.swallowClick || (e.target.closest && e.target.closest(".leaflet-control"))) return;
    e.stopPropagation();
    e.preventDefault();
    own.swallowClick = false;
  }, true);

  /* ---- proposals ---- */

  function base() {
    return cfg.api + "/communes/" + cfg.commune.code;
  }

  function selectionCodes() {
    const eas = ctx.eas();
    return ctx.selected().filter((id) => eas[id]).map((id) => eas[id].feature.properties.code);
  }

  function scopeBody() {
    const codes = selectionCodes();
    return codes.length && own.onlySelection ? { eas: codes } : {};
  }

  async function proposeAreas() {
    const body = { ...scopeBody(), min_eas: Number(own.band[0]), max_eas: Number(own.band[1]), redo: own.redo };
    const result = await ctx.call("POST", base() + "/supervisor-areas/proposal?round=" + cfg.round, { body });
    own.assignments = null;
    if (!result.ok) { clear(); ctx.showError(result); ctx.render(); return; }
    own.areas = result.body;
    own.stale = false;
    drawAreas();
    ctx.showMessage(t("proposal_title", { count: result.body.groups.length, eas: countEas(result.body) }),
      result.body.notes, "ok");
    ctx.render();
    showProposal();
  }

  /* The preview's table and its save button brought into the panel's view (on a tablet
     the panel is long and the proposal comes below its forms). */
  function showProposal() {
    const box = document.querySelector("#ea-panel .ea-proposal");
    if (box) box.scrollIntoView({ block: "start" });
  }

  function countEas(proposal) {
    return proposal.groups.reduce((n, g) => n + g.count, 0);
  }

  function drawAreas() {
    preview.clearLayers();
    for (const group of own.areas.groups) {
      const colour = PALETTE[(group.number - 1) % PALETTE.length];
      const layer = L.geoJSON(group.geometry, { interactive: false,
        style: { color: colour, weight: 4, fillColor: colour, fillOpacity: 0.3 } });
      layer.eachLayer((part) => part.bindTooltip(escape(group.number + " · " + fmt(group.households) + " " +
        t("households_after_number")), { permanent: true, direction: "center", className: "ea-group-label" }));
      preview.addLayer(layer);
    }
  }

  async function saveAreas() {
    const proposal = own.areas;
    if (!proposal || !proposal.groups.length) return;
    const vars = { count: proposal.groups.length, eas: countEas(proposal), replaced: proposal.replaces.length,
                   codes: proposal.replaces.join(", ") };
    const replacing = proposal.replaces.length > 0;
    if (!await ctx.confirmAction(t(replacing ? "confirm_replace_areas" : "confirm_save_areas", vars),
                                 t("save_proposal", vars), replacing)) return;
    const body = { areas: proposal.groups.map((g) => ({ eas: g.eas, supervisor: g.supervisor })),
                   replace: proposal.replaces };
    // (the preview's ETag: a colleague's newer areas are never saved over)
    const result = await ctx.call("POST", base() + "/supervisor-areas/batch?round=" + cfg.round,
                                  { body, etag: proposal.etag });
    if (result.ok) { clear(); ctx.setSelected([]); }
    if (result.status === 412) { clear(); own.stale = true; }
    await ctx.afterWrite(result, result.ok ? t("areas_saved", { count: vars.count }) : null);
    if (own.stale) showProposal();
  }

  async function proposeAssignments() {
    const result = await ctx.call("POST", base() + "/assignments/proposal?round=" + cfg.round, { body: scopeBody() });
    own.areas = null;
    preview.clearLayers();
    if (!result.ok) { own.assignments = null; ctx.showError(result); ctx.render(); return; }
    own.assignments = result.body;
    const people = new Set(result.body.assignments.map((a) => a.enumerator)).size;
    // (the EAs left over are listed in the proposal's box, not in a message as long as they are)
    const notes = result.body.unassigned.length ? [] : result.body.notes;
    ctx.showMessage(t("assignment_title", { count: result.body.assignments.length, people }), notes, "ok");
    ctx.setSelected(idsOfCodes(result.body.assignments.map((a) => a.ea)));
    showProposal();
  }

  async function saveAssignments() {
    const proposal = own.assignments;
    if (!proposal || !proposal.assignments.length) return;
    const vars = { count: proposal.assignments.length,
                   people: new Set(proposal.assignments.map((a) => a.enumerator)).size };
    if (!await ctx.confirmAction(t("confirm_save_assignments", vars), t("save_assignments", vars))) return;
    const result = await ctx.call("PUT", base() + "/assignments?round=" + cfg.round,
                                  { body: { assignments: proposal.assignments } });
    if (result.ok) { clear(); ctx.setSelected([]); }
    await ctx.afterWrite(result, result.ok ? t("assignments_saved", vars) : null);
  }

  function clear() {
    own.stale = false;
    own.areas = null;
    own.assignments = null;
    preview.clearLayers();
  }

  /* ---- the panel ---- */

  function button(action, label, extra) {
    return "<button type='button' class='ea-org-" + action + (extra ? " " + extra : "") + "' data-org='" + action + "'>" +
      escape(label || t(action)) + "</button>";
  }

  function toggle(action, on) {
    return "<button type='button' class='ea-org-" + action + "' data-org='" + action + "' aria-pressed='" + on + "'>" +
      escape(t(action)) + "</button>";
  }

  function html() {
    if (!ctx.canEdit()) return "";
    const count = ctx.selected().length;
    let out = "<h4>" + escape(t("bulk_title")) + "</h4><div class='ea-actions ea-bulk-select'>" +
      toggle("select_rect", own.mode === "rect") + toggle("select_lasso", own.mode === "lasso") +
      button("select_no_area") + button("select_no_enumerator") + "</div>" +
      "<div class='ea-selection-line'>" + escape(summaryText()) + "</div>";
    out += "<h4>" + escape(t("proposals")) + "</h4><div class='ea-proposal-form'><label>" + escape(t("band_from")) +
      " <input type='number' min='1' max='50' step='1' data-org-input='low' value='" + Number(own.band[0]) + "'></label> <label>" +
      escape(t("band_to")) + " <input type='number' min='1' max='50' step='1' data-org-input='high' value='" + Number(own.band[1]) +
      "'></label>";
    if (count) {
      out += "<label class='ea-check'><input type='checkbox' data-org-input='only'" + (own.onlySelection ? " checked" : "") + "> " +
        escape(t("only_selection", { count })) + "</label>";
    }
    out += "<label class='ea-check'><input type='checkbox' data-org-input='redo'" + (own.redo ? " checked" : "") + "> " +
      escape(t("redo_areas")) + "</label></div><div class='ea-actions'>" + button("propose_areas", null, "ea-primary") +
      button("propose_assignments") + "</div>";
    return out + areasHtml() + assignmentsHtml();
  }

  function areasHtml() {
    if (own.stale) {
      return "<div class='ea-proposal ea-areas-stale'><div class='ea-warn'>" + escape(t("areas_stale")) + "</div>" +
        button("fresh_preview", null, "ea-primary") + button("drop_proposal") + "</div>";
    }
    const p = own.areas;
    if (!p) return "";
    let out = "<div class='ea-proposal'><b>" + escape(t("proposal_title", { count: p.groups.length, eas: countEas(p) })) + "</b>";
    if (p.replaces.length) out += "<div class='ea-warn'>" + escape(t("proposal_replaces", { codes: p.replaces.join(", ") })) + "</div>";
    if (p.kept.length) out += "<div class='ea-hint'>" + escape(t("proposal_kept", { codes: p.kept.join(", ") })) + "</div>";
    out += "<table class='ea-proposal-table'><tr><th>" + escape(t("group")) + "</th><th>" + escape(t("eas")) + "</th><th class='num'>" +
      escape(t("households_short")) + "</th><th>" + escape(t("supervisor")) + "</th></tr>" +
      p.groups.map((g) => "<tr class='ea-proposal-group'><td><i class='ea-swatch' style='background:" +
        PALETTE[(g.number - 1) % PALETTE.length] + "'></i>" + g.number + "</td><td>" + escape(g.eas.join(", ")) +
        g.notes.map((n) => "<div class='ea-warn'>" + escape(n) + "</div>").join("") + "</td><td class='num'>" +
        escape(fmt(g.households)) + "</td><td>" + escape(g.supervisor || t("none")) + "</td></tr>").join("") + "</table>";
    if (p.groups.length) out += button("save_areas", t("save_proposal", { count: p.groups.length }), "ea-primary");
    return out + button("drop_proposal") + "</div>";
  }

  function assignmentsHtml() {
    const p = own.assignments;
    if (!p) return "";
    const people = new Set(p.assignments.map((a) => a.enumerator)).size;
    let out = "<div class='ea-proposal'><b>" + escape(t("assignment_title", { count: p.assignments.length, people })) + "</b>" +
      "<table class='ea-proposal-table'><tr><th>" + escape(t("enumerator")) + "</th><th>" + escape(t("new_eas")) +
      "</th><th class='num'>" + escape(t("total_households")) + "</th></tr>" +
      p.enumerators.filter((e) => e.new.length).map((e) => "<tr class='ea-proposal-enumerator'><td>" + escape(e.name + " (" + e.enumerator + ")") +
        "</td><td>" + escape(e.new.join(", ")) + "</td><td class='num'>" + escape(fmt(e.households)) + "</td></tr>").join("") + "</table>";
    if (p.unassigned.length) {
      const shown = p.unassigned.length > 20 ? p.unassigned.slice(0, 20).join(", ") + " …" : p.unassigned.join(", ");
      out += "<div class='ea-warn ea-still-unassigned'><b>" + escape(t("still_unassigned", { count: p.unassigned.length })) + "</b>: " +
        escape(shown) + "</div>";
    }
    if (p.assignments.length) out += button("save_assignments", t("save_assignments", { count: p.assignments.length }), "ea-primary");
    return out + button("drop_proposal") + "</div>";
  }

  function wire(panel) {
    panel.querySelectorAll("button[data-org]").forEach((b) => b.addEventListener("click", () => act(b.dataset.org)));
    panel.querySelectorAll("input[data-org-input]").forEach((input) => input.addEventListener("change", () => {
      const which = input.dataset.orgInput;
      if (which === "low") own.band[0] = input.value;
      else if (which === "high") own.band[1] = input.value;
      else if (which === "only") own.onlySelection = input.checked;
      else if (which === "redo") own.redo = input.checked;
    }));
  }

  function act(action) {
    switch (action) {
      case "select_rect": return setMode("rect");
      case "select_lasso": return setMode("lasso");
      case "select_no_area": {
        const grouped = new Set(((ctx.areas() || {}).areas || []).flatMap((a) => a.eas));
        return replace(Object.values(ctx.eas()).filter((ea) => !grouped.has(ea.feature.properties.code)).map((ea) => ea.feature.id));
      }
      case "select_no_enumerator": return replace(idsOfCodes(((ctx.workload() || {}).unassigned) || []));
      case "propose_areas": return proposeAreas();
      case "propose_assignments": return proposeAssignments();
      case "save_areas": return saveAreas();
      case "fresh_preview": return proposeAreas();
      case "save_assignments": return saveAssignments();
      case "drop_proposal": clear(); ctx.clearMessage(); return ctx.render();
      default: return undefined;
    }
  }

  /* Leaving the Organise tab: no mode, no preview. */
  function leave() {
    if (own.mode) setMode(null);
    clear();
  }

  addBadge();
  const api = { html, wire, update, leave,
    proposal: () => own.areas, assignments: () => own.assignments, mode: () => own.mode };
  window.eaOrganiser = api;
  return api;
}
