/* The census progress page and the user administration page: tables filled from the API;
   every text from data becomes a text node. The token is the one the EA editor keeps in
   this tab (session storage), or one from signing in here. */
(function () {
  "use strict";
  const cfg = window.geoSafe.config("census-page-config");
  const TOKEN_KEY = "geoServiceToken";
  const root = document.getElementById("census-page");
  let token = sessionStorage.getItem(TOKEN_KEY);
  let user = null;

  function t(key, vars) {
    let text = cfg.labels[key] || key;
    for (const [name, value] of Object.entries(vars || {})) text = text.split("{" + name + "}").join(String(value));
    return text;
  }

  /* el("td", {class: "num"}, "text", child) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key in { value: 1, checked: 1, disabled: 1 }) node[key] = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  async function call(method, path, body) {
    const headers = { "Accept-Language": cfg.lang };
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(cfg.api + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (err) { parsed = { detail: text }; }
    window.censusPage.last = { status: response.status, body: parsed };
    return { ok: response.ok, status: response.status, body: parsed };
  }

  function message(text, kind) {
    let box = document.querySelector(".cp-message");
    if (!box) box = root.appendChild(el("div", { class: "cp-message", role: "status" }));
    box.className = "cp-message cp-" + kind;
    box.textContent = text;
  }

  function failure(result) {
    const problems = ((result.body && (result.body.problems || result.body.errors)) || []).map((p) => p.problem);
    message(t("failed") + ": " + ((result.body && result.body.detail) || result.status) + (problems.length ? " — " + problems.join("; ") : ""), "error");
  }

  /* A dialog with OK/Cancel (and an optional password field); resolves the value or null. */
  function ask(text, withPassword) {
    return new Promise((resolve) => {
      const field = withPassword ? el("input", { type: "password", name: "new_password", autocomplete: "new-password", placeholder: t("new_password") }) : null;
      const back = el("div", { class: "cp-modal-back" });
      const done = (value) => { back.remove(); resolve(value); };
      const ok = el("button", { class: "cp-ok-button", onclick: () => done(withPassword ? field.value : true) }, t("ok"));
      back.appendChild(el("div", { class: "cp-modal", role: "dialog", "aria-modal": "true" }, el("p", {}, text), field,
        el("div", { class: "cp-buttons" }, el("button", { class: "cp-cancel-button", onclick: () => done(null) }, t("cancel")), ok)));
      back.addEventListener("keydown", (e) => { if (e.key === "Escape") done(null); });
      document.body.appendChild(back);
      (field || back.querySelector(".cp-cancel-button")).focus();
    });
  }

  async function whoAmI() {
    if (!token) return null;
    const result = await call("GET", "/users/me");
    if (!result.ok) { token = null; sessionStorage.removeItem(TOKEN_KEY); return null; }
    return result.body;
  }

  function signInBox(after) {
    const name = el("input", { name: "username", autocomplete: "username", placeholder: t("name") });
    const password = el("input", { type: "password", name: "password", autocomplete: "current-password", placeholder: t("password") });
    const go = async () => {
      const result = await call("POST", "/users/sign-in", { name: name.value.trim(), password: password.value, label: "admin page" });
      password.value = "";
      if (!result.ok) { failure(result); return; }
      token = result.body.token;
      sessionStorage.setItem(TOKEN_KEY, token);
      after();
    };
    password.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
    return el("div", { class: "cp-bar cp-signin" }, name, password, el("button", { class: "cp-sign-in", onclick: go }, t("sign_in")));
  }

  function userBar() {
    if (!user) return null;
    return el("div", { class: "cp-user" }, t("signed_in_as") + ": ", el("b", {}, user.name), " (" + t("role_" + user.role) + ") ",
      el("button", { class: "cp-sign-out", onclick: async () => {
        await call("POST", "/users/sign-out");
        token = null; user = null; sessionStorage.removeItem(TOKEN_KEY); start();
      } }, t("sign_out")));
  }

  function langLinks() {
    const link = (lang, label) => {
      const params = new URLSearchParams(window.location.search);
      params.set("lang", lang);
      return el("a", { href: "?" + params.toString() }, label);
    };
    return el("p", { class: "cp-lang" }, link("vi", "Tiếng Việt"), " · ", link("en", "English"), " · ",
      el("a", { href: cfg.api + "/map/ea?lang=" + cfg.lang }, t("editor_link")));
  }

  /* ---- progress ---- */

  async function progress() {
    const scope = el("input", { name: "scope", value: cfg.scope, size: 24, pattern: "[0-9,]*" });
    const roundInput = el("input", { name: "round", value: cfg.round, size: 6 });
    const table = el("div", { class: "cp-table" });
    const show = async () => {
      table.textContent = t("loading");
      const query = new URLSearchParams();
      if (scope.value.trim()) query.set("scope", scope.value.replace(/\s/g, ""));
      const path = "/census/" + encodeURIComponent(roundInput.value.trim()) + "/progress" + (query.toString() ? "?" + query : "");
      const result = await call("GET", path);
      table.textContent = "";
      if (!result.ok) { failure(result); return; }
      table.appendChild(progressTable(result.body, roundInput.value.trim()));
      window.censusPage.ready = true;
    };
    root.replaceChildren(el("h1", {}, t("progress_title")), userBar(),
      el("div", { class: "cp-bar" }, el("label", {}, t("round"), roundInput), el("label", {}, t("scope"), scope),
        el("button", { class: "cp-show", onclick: show }, t("show"))), table, langLinks());
    await show();
  }

  function progressTable(data, census) {
    const columns = ["eas", "draft", "submitted", "approved", "rejected", "assigned", "in_supervisor_areas"];
    const heads = ["eas", "draft", "submitted", "approved", "rejected", "assigned", "in_areas"];
    // the totals first, under the heading: what a manager reads before any commune
    const table = el("table", { class: "cp-progress" },
      el("tr", {}, el("th", {}, t("commune")), heads.map((h) => el("th", { class: "num" }, t(h))), el("th", {})),
      el("tr", { class: "cp-total" }, el("td", {}, t("total")), columns.map((c) => el("td", { class: "num" }, data.totals[c])), el("td", {})));
    for (const row of data.rows) {
      const link = cfg.api + "/map/ea?" + new URLSearchParams({ commune: row.code, round: census, lang: cfg.lang }).toString();
      table.appendChild(el("tr", { class: "cp-row" + (row.eas === 0 ? " cp-empty" : ""), "data-code": row.code },
        el("td", {}, row.name + " (" + row.code + ")"), columns.map((c) => el("td", { class: "num" }, row[c])),
        el("td", {}, el("a", { href: link }, t("open_editor")))));
    }
    const provinces = (data.provinces || []).map((p) => p.name + " (" + p.code + ")").join(", ");
    return el("div", {}, provinces ? el("h2", { class: "cp-province" }, t("province") + ": " + provinces) : null,
      el("p", { class: "cp-summary" }, el("span", {}, t("communes") + ": " + data.communes),
      el("span", { class: "cp-without" }, t("without_eas") + ": " + data.without_eas)), table);
  }

  /* ---- users ---- */

  async function users() {
    const parts = [el("h1", {}, t("users_title")), userBar()];
    if (!user || user.role !== "admin") {
      root.replaceChildren(...parts, el("p", {}, t("admins_only")), signInBox(start), langLinks());
      window.censusPage.ready = true;
      return;
    }
    const result = await call("GET", "/admin/users");
    if (!result.ok) { root.replaceChildren(...parts); failure(result); return; }
    root.replaceChildren(...parts, usersTable(result.body.users), createForm(), langLinks());
    window.censusPage.ready = true;
  }

  function roleSelect(name, chosen) {
    return el("select", { name }, ["viewer", "editor", "supervisor", "admin"].map((r) =>
      el("option", { value: r, selected: r === chosen ? "selected" : null }, t("role_" + r))));
  }

  async function act(result, okText) {
    if (!result.ok) { failure(result); return; }
    await users();
    message(okText || t("done"), "ok");
  }

  function usersTable(list) {
    const table = el("table", { class: "cp-users" }, el("tr", {}, ["name", "role", "scope", "disabled", "has_password", "tokens", ""].map((h) => el("th", {}, h ? t(h) : ""))));
    for (const u of list) {
      const role = roleSelect("role", u.role);
      const scope = el("input", { name: "scope", value: u.scope.join(","), size: 14 });
      const disabled = el("input", { type: "checkbox", name: "disabled", checked: u.disabled });
      const save = async () => {
        if (disabled.checked && !u.disabled && !await ask(t("confirm_disable", { name: u.name }))) return;
        const body = { role: role.value, scope: scope.value.split(",").map((s) => s.trim()).filter(Boolean), disabled: disabled.checked };
        await act(await call("PATCH", "/admin/users/" + encodeURIComponent(u.name), body));
      };
      const reset = async () => {
        const password = await ask(t("confirm_reset", { name: u.name }), true);
        if (!password) return;
        await act(await call("PATCH", "/admin/users/" + encodeURIComponent(u.name), { password }));
      };
      const revokeAll = async () => {
        if (!await ask(t("confirm_revoke_all", { name: u.name, count: u.tokens.length }))) return;
        await act(await call("POST", "/admin/users/" + encodeURIComponent(u.name) + "/revoke"));
      };
      const tokens = el("ul", { class: "cp-tokens" }, u.tokens.map((tok) => el("li", {},
        tok.label + " · " + (tok.expires_at ? t("expires") + " " + new Date(tok.expires_at).toLocaleString(cfg.lang === "vi" ? "vi-VN" : "en-GB") : t("never")) + " ",
        el("button", { class: "cp-revoke", onclick: async () => {
          if (!await ask(t("confirm_revoke", { label: tok.label, name: u.name }))) return;
          await act(await call("DELETE", "/admin/tokens/" + tok.id));
        } }, t("revoke")))));
      table.appendChild(el("tr", { class: "cp-user-row", "data-name": u.name }, el("td", {}, u.name), el("td", {}, role), el("td", {}, scope),
        el("td", {}, disabled), el("td", {}, u.has_password ? t("yes") : t("no")), el("td", {}, tokens),
        el("td", {}, el("button", { class: "cp-save", onclick: save }, t("save")), el("button", { class: "cp-reset", onclick: reset }, t("reset_password")),
          u.tokens.length ? el("button", { class: "cp-revoke-all", onclick: revokeAll }, t("revoke_all")) : null)));
    }
    return table;
  }

  function createForm() {
    const name = el("input", { name: "new_name", placeholder: t("name"), autocomplete: "off" });
    const role = roleSelect("new_role", "editor");
    const scope = el("input", { name: "new_scope", placeholder: t("scope"), size: 20 });
    const password = el("input", { type: "password", name: "new_user_password", placeholder: t("new_password"), autocomplete: "new-password" });
    const create = async () => {
      const body = { name: name.value.trim(), role: role.value, password: password.value,
                     scope: scope.value.split(",").map((s) => s.trim()).filter(Boolean) };
      await act(await call("POST", "/admin/users", body));
    };
    return el("div", {}, el("h2", {}, t("create_user")), el("div", { class: "cp-bar cp-create" }, name, role, scope, password,
      el("button", { class: "cp-create-button", onclick: create }, t("create"))));
  }

  window.censusPage = { ready: false, last: null };

  async function start() {
    window.censusPage.ready = false;
    user = await whoAmI();
    if (cfg.page === "progress") await progress();
    else await users();
  }
  start();
})();
