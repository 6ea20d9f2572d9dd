/* A unit's values over time as an SVG line chart, with its parent and the country for
   reference. A suppressed or unavailable period is a gap in the line and a mark on the axis,
   never a zero. */
import { h, s } from "../dom.js";

const COLOURS = { unit: "#c0392b", parent: "#2c7fb8", national: "#636363" };
const DASH = { unit: null, parent: "5 3", national: "2 3" };

function niceTicks(min, max, count) {
  if (min === max) { const d = Math.abs(min) || 1; min -= d / 2; max += d / 2; }
  const span = max - min;
  const step0 = Math.pow(10, Math.floor(Math.log10(span / count)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * step0).find((st) => span / st <= count) || step0 * 10;
  const ticks = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

/* Which periods get a label on the x axis: every n-th, n chosen so that labels never
   touch (a label is about 6 units wide per character at the ticks' 10 px), the last
   always, and the one before it dropped when it would touch the last. */
export function axisLabels(periods, span) {
  const n = periods.length;
  if (n < 2) return n ? [0] : [];
  const widest = Math.max(...periods.map((p) => p.length)) * 6 + 6;
  const step = span / (n - 1);
  const every = Math.max(1, Math.ceil(widest / step));
  const shown = [];
  for (let i = 0; i < n; i += every) shown.push(i);
  if (shown[shown.length - 1] !== n - 1) {
    if ((n - 1 - shown[shown.length - 1]) * step < widest) shown.pop();
    shown.push(n - 1);
  }
  return shown;
}

/* lines: [{key: "unit"|"parent"|"national", name, series: [{period, value, status}]}] */
export function lineChart(lines, i18n, opts) {
  const { t, number } = i18n;
  const width = 320, height = 190, left = 52, right = 18, top = 12, bottom = 34;
  const periods = [...new Set(lines.flatMap((l) => l.series.map((p) => p.period)))].sort();
  const values = lines.flatMap((l) => l.series.filter((p) => p.value !== null).map((p) => p.value));
  const svg = s("svg", { class: "gv-chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": opts.title });
  svg.appendChild(s("title", {}, opts.title));
  if (!periods.length) return svg;
  const lo = Math.min(...values, opts.zero ? 0 : Infinity), hi = Math.max(...values);
  const ticks = values.length ? niceTicks(Number.isFinite(lo) ? lo : 0, hi, 4) : [0, 1];
  const y0 = ticks[0], y1 = ticks[ticks.length - 1];
  const x = (period) => left + (periods.length === 1 ? (width - left - right) / 2
    : (periods.indexOf(period) / (periods.length - 1)) * (width - left - right));
  const y = (value) => top + (1 - (value - y0) / (y1 - y0 || 1)) * (height - top - bottom);
  for (const tick of ticks) {
    svg.appendChild(s("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: "gv-grid" }));
    svg.appendChild(s("text", { x: left - 4, y: y(tick) + 3, class: "gv-tick", "text-anchor": "end" }, number(tick, opts.decimals)));
  }
  for (const i of axisLabels(periods, width - left - right)) {
    svg.appendChild(s("text", { x: x(periods[i]), y: height - bottom + 14, class: "gv-tick gv-xtick", "text-anchor": "middle" }, periods[i]));
  }
  for (const line of lines) {
    const colour = COLOURS[line.key];
    let segment = [];
    const flush = () => {
      if (segment.length > 1) {
        svg.appendChild(s("polyline", { points: segment.map(([a, b]) => a + "," + b).join(" "), fill: "none",
          stroke: colour, "stroke-width": line.key === "unit" ? 2.4 : 1.6, "stroke-dasharray": DASH[line.key] }));
      }
      segment = [];
    };
    for (const p of [...line.series].sort((a, b) => (a.period < b.period ? -1 : 1))) {
      if (p.value === null || p.value === undefined) {
        flush();
        if (line.key === "unit") {
          // a gap: marked on the axis with what it is (hidden, or not available)
          const mark = s("text", { x: x(p.period), y: height - bottom - 4, class: "gv-gap gv-gap-" + p.status,
            "text-anchor": "middle" }, p.status === "suppressed" ? "×" : "○");
          mark.appendChild(s("title", {}, p.period + ": " + t("status_" + p.status)));
          svg.appendChild(mark);
        }
        continue;
      }
      segment.push([x(p.period), y(p.value)]);
      // a period carried over from older boundaries is an estimate: a hollow point
      const carried = (opts.carried || []).includes(p.period);
      const dot = s("circle", { cx: x(p.period), cy: y(p.value), r: line.key === "unit" ? 3.2 : 2.4,
        fill: carried ? "#ffffff" : colour, stroke: colour, "stroke-width": carried ? 1.8 : 0,
        class: "gv-point gv-point-" + line.key + (carried ? " gv-point-carried" : ""), "data-period": p.period, "data-value": p.value });
      dot.appendChild(s("title", {}, line.name + " · " + p.period + ": " + number(p.value, opts.decimals) + " " + opts.unit +
        (p.status === "provisional" ? " (" + t("status_provisional") + ")" : "") + (carried ? " (" + t("carried_mark") + ")" : "")));
      svg.appendChild(dot);
    }
    flush();
  }
  return svg;
}

/* The chart's key, and a table of the same numbers (readable without the picture). */
export function chartKey(lines) {
  return h("div", { class: "gv-chart-key" }, lines.map((line) => h("span", { class: "gv-key gv-key-" + line.key },
    h("i", { style: { borderTopColor: COLOURS[line.key], borderTopStyle: line.key === "unit" ? "solid" : "dashed" } }), line.name)));
}

export function chartTable(lines, i18n, decimals, carried) {
  const { t, number } = i18n;
  const periods = [...new Set(lines.flatMap((l) => l.series.map((p) => p.period)))].sort();
  const cell = (line, period) => {
    const p = line.series.find((q) => q.period === period);
    if (!p) return h("td", {}, "");
    if (p.value === null) return h("td", { class: "gv-status-" + p.status }, t("status_" + p.status));
    return h("td", { class: "gv-num" }, number(p.value, decimals) + (p.status === "provisional" ? " *" : ""));
  };
  return h("table", { class: "gv-series-table" },
    h("thead", {}, h("tr", {}, h("th", {}, t("period")), lines.map((l) => h("th", {}, l.name)))),
    h("tbody", {}, periods.map((p) => h("tr", {}, h("th", {}, (carried || []).includes(p) ? p + " (" + t("carried_mark") + ")" : p),
      lines.map((l) => cell(l, p))))));
}

/* One period only: the unit's value as a bar beside its parent's and the country's, on one
   scale from zero, each with its number (a line chart of one point says nothing). A value
   not published is said in words, never drawn as zero. */
export function barChart(lines, i18n, opts) {
  const { t, number } = i18n;
  const width = 320, left = 8, right = 8, labelH = 14, barH = 14, gap = 8;
  const rowH = labelH + barH + gap;
  const height = lines.length * rowH + 4;
  const values = lines.map((l) => (l.series[0] ? l.series[0].value : null));
  const shown = values.filter((v) => v !== null && v !== undefined);
  const lo = Math.min(0, ...shown), hi = Math.max(0, ...shown);
  const span = hi - lo || 1;
  const x = (v) => left + ((v - lo) / span) * (width - left - right);
  const svg = s("svg", { class: "gv-chart gv-bars", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": opts.title });
  svg.appendChild(s("title", {}, opts.title));
  lines.forEach((line, i) => {
    const p = line.series[0] || { value: null, status: "not_available" };
    const top = i * rowH + 2;
    const said = p.value === null || p.value === undefined
      ? t("status_" + p.status)
      : number(p.value, opts.decimals) + " " + opts.unit + (p.status === "provisional" ? " (" + t("status_provisional") + ")" : "");
    svg.appendChild(s("text", { x: left, y: top + labelH - 3, class: "gv-bar-label" }, line.name + ": " + said));
    if (p.value === null || p.value === undefined) return;
    const a = x(Math.min(0, p.value)), b = x(Math.max(0, p.value));
    const bar = s("rect", { x: a, y: top + labelH, width: Math.max(1, b - a), height: barH, fill: COLOURS[line.key],
      class: "gv-bar gv-bar-" + line.key, "data-period": p.period, "data-value": p.value });
    bar.appendChild(s("title", {}, line.name + " · " + p.period + ": " + said));
    svg.appendChild(bar);
  });
  return svg;
}
