/* Long outputs (a commune's map book, a large area report) made in the background by the
   service: asked for once (POST /processes/{id}/execution, or a route that answered 202),
   followed at /jobs/{id} (steps done of the total), downloaded when ready, cancelled after a
   confirmation. The jobs a page asked for are remembered in localStorage (one key per page),
   so a reload (or another tab) finds them again. Text reaches the page only as text
   (textContent). */

const STORAGE_KEY = "geoServiceJobs";
const POLL_MS = 1500;
const ACTIVE = ["accepted", "running"];

/* `t(key, vars)`: the page's texts; `token()`: the signed-in user's token (or null);
   `confirm(text, okLabel)`: resolves true when the user confirms; `fail(result, title)`:
   shows a refusal. */
export function createJobs({ api, lang, t, token, confirm, fail, storageKey }) {
  const key = storageKey || STORAGE_KEY;
  const tray = document.createElement("div");
  tray.className = "geo-jobs";
  tray.setAttribute("role", "status");
  tray.setAttribute("aria-live", "polite");
  document.body.appendChild(tray);
  const shown = new Map(); // job id -> { title, status, element }
  let timer = null;

  function headers() {
    const out = { "Accept-Language": lang };
    const secret = token();
    if (secret) out.Authorization = "Bearer " + secret;
    return out;
  }

  function remembered() {
    try {
      const list = JSON.parse(localStorage.getItem(key) || "[]");
      return Array.isArray(list) ? list.filter((j) => j && typeof j.id === "string") : [];
    } catch (err) {
      return [];
    }
  }

  function remember() {
    const list = [...shown.entries()].map(([id, job]) => ({ id, title: job.title }));
    localStorage.setItem(key, JSON.stringify(list));
  }

  async function start(process, inputs, title) {
    const response = await fetch(api + "/processes/" + process + "/execution", {
      method: "POST",
      headers: { ...headers(), "Content-Type": "application/json", Prefer: "respond-async" },
      body: JSON.stringify({ inputs }),
    });
    let body = {};
    try { body = await response.json(); } catch (err) { /* not JSON */ }
    if (response.status !== 201) {
      fail({ ok: false, status: response.status, body }, t("job_not_started"));
      return null;
    }
    follow(body.jobID, title, body);
    return body.jobID;
  }

  /* A job the service started for this page (a route's 202 answer): shown and followed. */
  function follow(id, title, status) {
    show(id, title, status);
    remember();
    poll();
  }

  function show(id, title, status) {
    let job = shown.get(id);
    if (!job) {
      job = { title, status: null, element: document.createElement("div") };
      job.element.className = "geo-job";
      job.element.dataset.job = id;
      tray.appendChild(job.element);
      shown.set(id, job);
    }
    job.status = status;
    draw(id, job);
  }

  function until(iso) {
    const when = new Date(iso);
    return when.toLocaleString(lang === "vi" ? "vi-VN" : "en-GB",
      { hour: "2-digit", minute: "2-digit", day: "2-digit", month: "2-digit" });
  }

  function stateText(status) {
    const vars = { done: status.pagesDone, total: status.pagesTotal };
    switch (status.status) {
      case "accepted": return t("job_accepted", vars);
      case "running": return t("job_running", vars);
      case "successful": return t("job_successful", { ...vars, until: until(status.expires) });
      case "failed": return t("job_failed", { why: status.message || "" });
      case "dismissed": return t("job_dismissed");
      default: return t("job_gone");
    }
  }

  function button(label, kind, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "geo-job-" + kind;
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  function draw(id, job) {
    const box = job.element;
    box.hidden = job.status === undefined; // (asked about, no answer yet)
    if (box.hidden) return;
    const status = job.status || { status: "gone", pagesDone: 0, pagesTotal: 0 };
    box.dataset.status = status.status;
    box.replaceChildren();
    const title = document.createElement("div");
    title.className = "geo-job-title";
    title.textContent = job.title;
    box.appendChild(title);
    if (ACTIVE.includes(status.status) || status.status === "successful") {
      const bar = document.createElement("progress");
      bar.max = Math.max(1, status.pagesTotal);
      bar.value = status.pagesDone;
      bar.setAttribute("aria-label", t("job_progress"));
      box.appendChild(bar);
    }
    const line = document.createElement("div");
    line.className = "geo-job-state";
    line.textContent = stateText(status);
    box.appendChild(line);
    const actions = document.createElement("div");
    actions.className = "geo-job-actions";
    if (ACTIVE.includes(status.status)) {
      actions.appendChild(button(t("job_cancel"), "cancel", () => cancel(id)));
    } else {
      if (status.status === "successful") {
        actions.appendChild(button(t("job_download"), "download", () => download(id)));
      }
      actions.appendChild(button(t("job_close"), "close", () => close(id)));
    }
    box.appendChild(actions);
  }

  async function refresh(id) {
    const job = shown.get(id);
    const response = await fetch(api + "/jobs/" + encodeURIComponent(id), { headers: headers() });
    if (response.status === 404) {
      job.status = null; // (expired and deleted)
    } else if (response.ok) {
      job.status = await response.json();
    } else {
      return; // (signed out, or the service busy: try again later)
    }
    draw(id, job);
  }

  async function poll() {
    if (timer) clearTimeout(timer);
    timer = null;
    await Promise.all([...shown.keys()].map((id) => refresh(id).catch(() => null)));
    const active = [...shown.values()].some((job) => job.status && ACTIVE.includes(job.status.status));
    if (active) timer = setTimeout(poll, POLL_MS);
  }

  async function cancel(id) {
    const job = shown.get(id);
    if (!(await confirm(t("job_confirm_cancel", { title: job.title }), t("job_cancel_ok")))) return;
    const response = await fetch(api + "/jobs/" + encodeURIComponent(id), { method: "DELETE", headers: headers() });
    let body = {};
    try { body = await response.json(); } catch (err) { /* not JSON */ }
    if (!response.ok) return fail({ ok: false, status: response.status, body }, t("job_not_started"));
    // (others asked for the same book: it goes on for them, this page lets it go)
    if (ACTIVE.includes(body.status)) return close(id);
    job.status = body;
    draw(id, job);
  }

  async function download(id) {
    const response = await fetch(api + "/jobs/" + encodeURIComponent(id) + "/results", { headers: headers() });
    if (!response.ok) {
      let body = {};
      try { body = await response.json(); } catch (err) { /* not JSON */ }
      return fail({ ok: false, status: response.status, body }, t("job_not_started"));
    }
    const disposition = response.headers.get("Content-Disposition") || "";
    const named = /filename="([^"]+)"/.exec(disposition);
    const blob = await response.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = named ? named[1] : "download";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  }

  function close(id) {
    const job = shown.get(id);
    if (job) job.element.remove();
    shown.delete(id);
    remember();
  }

  /* The jobs this browser asked for before (a reload): shown again, followed while active. */
  async function resume() {
    for (const { id, title } of remembered()) if (!shown.has(id)) show(id, title, undefined);
    if (shown.size) {
      await poll();
      for (const [id, job] of [...shown.entries()]) if (!job.status) close(id);
    }
  }

  return { start, follow, resume, jobs: () => [...shown.entries()].map(([id, job]) => ({ id, ...job.status })) };
}
