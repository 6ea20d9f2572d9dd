/* The area report (PDF or Excel) of a drawn area or of the selected unit, made by the service
   (/reports/area): the drawn area is posted as /aggregate takes it, a unit goes by its code
   and boundary year. The file is saved once it has fully arrived; an error says why, in the
   page's language. */
import { h } from "../dom.js";

function filename(response, fallback) {
  const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  return match ? match[1] : fallback;
}

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/* Buttons for the report of `what()`: {body} (a drawn area) or {unit, vintage}. */
export function reportButtons(app, what) {
  const { t } = app.i18n;
  const status = h("span", { class: "gv-report-status", role: "status" });

  async function make(format, button) {
    const spec = what();
    const params = { format, lang: app.i18n.lang, unit: spec.unit, vintage: spec.vintage };
    const headers = { "Accept-Language": app.i18n.lang };
    const init = spec.body
      ? { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(spec.body) }
      : { method: "GET", headers };
    button.disabled = true;
    status.textContent = t("report_making");
    try {
      const response = await fetch(app.api.url("/reports/area", params), init);
      if (!response.ok) {
        let detail = "HTTP " + response.status;
        try { detail = (await response.json()).detail || detail; } catch (err) { /* not JSON */ }
        status.textContent = t("report_error") + ": " + detail;
        return;
      }
      save(await response.blob(), filename(response, "report." + format));
      status.textContent = "";
    } catch (err) {
      status.textContent = t("report_error") + ": " + err.message;
    } finally {
      button.disabled = false;
    }
  }

  const button = (format, label) => {
    const b = h("button", { type: "button", class: "gv-report-" + format, onclick: () => make(format, b) }, label);
    return b;
  };
  return h("p", { class: "gv-report" }, h("span", { class: "gv-report-label" }, t("report") + ": "),
    button("pdf", t("report_pdf")), " ", button("xlsx", t("report_xlsx")), " ", status);
}
