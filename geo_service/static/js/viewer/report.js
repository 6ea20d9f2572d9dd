/* The area report (PDF or Excel) of a drawn area or of the selected unit, made by the service
   (/reports/area): the drawn area is posted as /aggregate takes it, a unit goes by its code
   and boundary year. The file is saved once it has fully arrived; an error says why, in the
   page's language. A large area's report is made in the background (the service answers
   202 with the job): a card follows its progress and offers the file when ready (jobs.js). */
import { h } from "../dom.js";
import { createJobs } from "../jobs.js";

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

/* A confirmation in the page's language (a modal <dialog>): resolves true on `okLabel`. */
function confirmDialog(t, text, okLabel) {
  return new Promise((resolve) => {
    const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    const dialog = h("dialog", { class: "gv-confirm" },
      h("p", {}, text),
      h("p", { class: "gv-confirm-actions" },
        h("button", { type: "button", class: "gv-confirm-no", onclick: () => done(false) }, t("job_keep")),
        " ",
        h("button", { type: "button", class: "gv-confirm-ok", onclick: () => done(true) }, okLabel)));
    dialog.addEventListener("cancel", (event) => { event.preventDefault(); done(false); });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

/* The page's background jobs (one tray, remembered apart from the EA editor's); a refusal
   (a download or a cancel) is said under the tray. */
export function viewerJobs(app) {
  if (!app.jobs) {
    const { t } = app.i18n;
    const problem = h("p", { class: "gv-job-problem", role: "alert", hidden: true });
    document.body.appendChild(problem);
    app.jobs = createJobs({
      api: app.api.url(""), lang: app.i18n.lang, t, token: app.token,
      confirm: (text, okLabel) => confirmDialog(t, text, okLabel),
      fail: (result, title) => {
        problem.textContent = title + ": " + ((result.body && result.body.detail) || "HTTP " + result.status);
        problem.hidden = false;
        setTimeout(() => { problem.hidden = true; }, 8000);
      },
      storageKey: "geoViewerJobs",
    });
  }
  return app.jobs;
}

/* Buttons for the report of `what()`: {body} (a drawn area) or {unit, vintage}. */
export function reportButtons(app, what) {
  const { t } = app.i18n;
  const status = h("span", { class: "gv-report-status", role: "status" });

  async function make(format, button) {
    const spec = what();
    const params = { format, lang: app.i18n.lang, unit: spec.unit, vintage: spec.vintage };
    const headers = { "Accept-Language": app.i18n.lang };
    const token = app.token();
    if (token) headers.Authorization = "Bearer " + token;
    const init = spec.body
      ? { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(spec.body) }
      : { method: "GET", headers };
    button.disabled = true;
    status.textContent = t("report_making");
    try {
      const response = await fetch(app.api.url("/reports/area", params), init);
      if (response.status === 202) {  // (a large area: the job's card takes it from here)
        const job = await response.json();
        viewerJobs(app).follow(job.jobID, t("report_job_title", { format: t("report_" + format) }), job);
        status.textContent = "";
        return;
      }
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
