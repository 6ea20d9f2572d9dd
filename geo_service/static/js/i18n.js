/* The pages' texts: one table per language, written by the service (geo_service/viewer/
   labels.py) into the page's settings; numbers formatted the page's way. */

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

  /* A signed number for changes: +1.2 / −0.4. */
  function signed(value, decimals) {
    if (value === null || value === undefined) return "–";
    const text = fixed(Math.abs(value), decimals);
    return value > 0 ? "+" + text : value < 0 ? "−" + text : text;
  }

  /* A {vi, en} pair from the catalogue in the page's language. */
  function pick(pair) {
    if (pair === null || pair === undefined) return "";
    if (typeof pair === "string") return pair;
    return pair[lang] || pair.en || "";
  }

  return { t, number, fixed, signed, pick, lang, locale };
}
