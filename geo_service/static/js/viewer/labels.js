/* Unit names on the map: each at its unit's label point (the centre of the largest circle
   inside it), shown only at zooms where the name fits in that circle, larger units first,
   never two overlapping. Names are text nodes. */

const CHAR_PX = 6.4; // average width of a character of the labels' 12px font
const LINE_PX = 15;
// the unit's type in front of its name ("Tỉnh Sơn La", "Thành phố Huế" in the 2019 data):
// the map shows the name alone, as printed maps do, unless the name is only a number
const TYPE_PREFIX = /^(Tỉnh|Thành phố|TP\.|Quận|Huyện|Thị xã|Thị trấn|Phường|Xã|Đặc khu)\s+(?=\D)/u;

export function mapName(name) { return name.replace(TYPE_PREFIX, ""); }

export function createLabels(map) {
  const pane = map.getPane("gvLabels");
  const layer = L.DomUtil.create("div", "gv-labels", pane);
  let sets = []; // [{table, className, minRadiusPx}]
  let selected = null; // {code, lat, lng, name}
  let shown = [];

  function metresPerPixel(lat) {
    return 40075016.686 * Math.cos((lat * Math.PI) / 180) / (256 * Math.pow(2, map.getZoom()));
  }

  function candidates() {
    const bounds = map.getBounds().pad(0.05);
    const out = [];
    for (const set of sets) {
      const { table } = set;
      for (let i = 0; i < table.codes.length; i++) {
        const [lng, lat, radius] = table.labels[i];
        if (!bounds.contains([lat, lng])) continue;
        const name = mapName(table.names[i]);
        const rpx = radius / metresPerPixel(lat);
        const width = name.length * CHAR_PX + 6;
        if (rpx * 2 < Math.min(width, set.maxWidth || width) * (set.fit || 1) || rpx * 2 < LINE_PX) continue;
        out.push({ code: table.codes[i], name, lat, lng, rpx, width, className: set.className, rank: set.rank || 0 });
      }
    }
    out.sort((a, b) => (a.rank - b.rank) || (b.rpx - a.rpx));
    return out;
  }

  function overlaps(a, b) {
    return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
  }

  function place(item, taken, className) {
    const p = map.latLngToLayerPoint([item.lat, item.lng]);
    const box = { x0: p.x - item.width / 2 - 2, x1: p.x + item.width / 2 + 2, y0: p.y - LINE_PX / 2, y1: p.y + LINE_PX / 2 };
    if (taken.some((b) => overlaps(b, box))) return false;
    taken.push(box);
    const div = L.DomUtil.create("div", "gv-label " + className, layer);
    div.textContent = item.name;
    div.dataset.code = item.code;
    L.DomUtil.setPosition(div, L.point(Math.round(p.x - item.width / 2), Math.round(p.y - LINE_PX / 2)));
    div.style.width = Math.ceil(item.width) + "px";
    shown.push(item.code);
    return true;
  }

  function redraw() {
    while (layer.firstChild) layer.removeChild(layer.firstChild);
    shown = [];
    const taken = [];
    if (selected) place({ ...selected, width: selected.name.length * CHAR_PX + 10 }, taken, "gv-label-selected");
    for (const item of candidates()) {
      if (selected && item.code === selected.code) continue;
      place(item, taken, item.className);
    }
  }

  map.on("zoomend moveend viewreset", redraw);

  return {
    /* sets: [{table, className, rank, fit}] — a unit table (from /maps/units) per level. */
    setTables(newSets) { sets = newSets.filter((x) => x.table); redraw(); },
    select(item) { selected = item; redraw(); },
    hidden(flag) { layer.style.display = flag ? "none" : ""; },
    shown: () => shown.slice(),
    redraw,
  };
}
