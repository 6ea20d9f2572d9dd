/* The pages' texts: one table per language, written by the service (geo_service/viewer/
   labels.py) into the page's settings; numbers formatted the page's way. */

const MORE_DECIMALS = 3; // decimals a small change may add to its indicator's to show it
// decimals class limits may add to tell them apart (the page classifies values rounded to
// the indicator's decimals + 2: more would tell apart what the map does not)
const MORE_LIMIT_DECIMALS = 2;

export function createI18n(table, lang) {
  const locale = lang === "vi" ? "vi-VN" : "en-GB";

  /* t("key", {name: "x"}) → the text with {name} filled in; an unknown key shows itself
     (so a missing text is seen, and a test finds it). */
  function t(key, vars) {
    let text = Object.prototype.hasOwnProperty.call(table, key) ? table[key] : key;
    for (const [name, value] of Object.entries(vars || {})) text = text.split("{" + name + "}").join(String(value));
    return text;
  }

  function number(value, decimals) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    const digits = decimals === undefined ? 2 : Math.max(0, Math.min(decimals, 10));
    return Number(value).toLocaleString(locale, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  }

  /* A value with exactly `decimals` decimals (a table's column reads evenly). */
  function fixed(value, decimals) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    const digits = Math.max(0, Math.min(decimals || 0, 10));
    return Number(value).toLocaleString(locale, { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }

  /* The decimals a non-zero value needs not to read as zero: `decimals`, or up to
     MORE_DECIMALS more; null when even these read zero (a zero, or a float's noise). */
  function shownDecimals(value, decimals) {
    const digits = Math.max(0, Math.min(decimals || 0, 10));
    if (!value) return null;
    for (let d = digits; d <= Math.min(digits + MORE_DECIMALS, 10); d++) {
      if (Math.round(Math.abs(value) * 10 ** d) >= 1) return d;
    }
    return null;
  }

  /* A signed number for changes: +1.2 / −0.4. A change too small for the decimals gets the
     few more it needs (−0.003, never "−0.00", which reads as no change, nor "0.00" for a
     decrease); smaller still it reads "< 0" / "> 0", or as a class `limit` plain 0. */
  function signed(value, decimals, limit) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    const digits = shownDecimals(value, decimals);
    if (digits === null) return !value || limit ? fixed(0, decimals) : value < 0 ? "< 0" : "> 0";
    return (value > 0 ? "+" : "−") + fixed(Math.abs(value), digits);
  }

  /* The decimals a legend writes its class limits with, the same for every limit: the
     indicator's, or up to MORE_LIMIT_DECIMALS more where fewer would write two different
     limits alike ("5,00 – 5,00" tells a reader nothing). As the map export's legend
     (geo_service/outputs/cartography.limit_decimals). */
  function limitDecimals(limits, decimals) {
    const distinct = [...new Set(limits.filter((v) => v !== null && v !== undefined && !Number.isNaN(v)))];
    const least = Math.max(0, Math.min(decimals || 0, 10));
    for (let d = least; d < least + MORE_LIMIT_DECIMALS; d++) {
      const written = distinct.map((v) => Number(v).toFixed(d));
      if (new Set(written).size === written.length) return d;
    }
    return least + MORE_LIMIT_DECIMALS;
  }

  /* A class limit with `digits` decimals (a negative one that rounds to zero reads 0). */
  function limit(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return fixed(Number(Number(value).toFixed(digits)) === 0 ? 0 : value, digits);
  }

  /* A {vi, en} pair from the catalogue in the page's language. */
  function pick(pair) {
    if (pair === null || pair === undefined) return "";
    if (typeof pair === "string") return pair;
    return pair[lang] || pair.en || "";
  }

  /* An ISO date (2026-12-07) the language's way: 07/12/2026 in Vietnamese, 7 Dec 2026 in
     English (written from its parts: no time zone can move the day). */
  function date(iso) {
    const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(iso || ""));
    if (!m) return String(iso || "");
    return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3])).toLocaleDateString(locale, { timeZone: "UTC",
      day: lang === "vi" ? "2-digit" : "numeric", month: lang === "vi" ? "2-digit" : "short", year: "numeric" });
  }

  return { t, number, fixed, signed, limitDecimals, limit, pick, date, lang, locale };
}
