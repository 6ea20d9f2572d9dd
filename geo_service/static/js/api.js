/* The one client of the service's API for both pages: JSON in and out, the page's language
   for messages (Accept-Language), a token when signed in, and every answer recorded for the
   tests (window.geoRequests). */

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || "HTTP " + status);
    this.status = status;
    this.body = body || {};
    this.parameter = this.body.parameter || null;
  }
}

export function createApi(base, lang, options) {
  const opts = options || {};
  const log = (window.geoRequests = window.geoRequests || []);

  function url(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
    }
    const text = query.toString();
    return base + path + (text ? "?" + text : "");
  }

  /* One request; resolves to {ok, status, body, etag} and never throws for HTTP errors. */
  async function request(method, path, params, body, extra) {
    const more = extra || {};
    const headers = { "Accept-Language": lang, Accept: "application/json" };
    const token = opts.token ? opts.token() : null;
    if (token) headers.Authorization = "Bearer " + token;
    if (more.etag) headers["If-Match"] = more.etag;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const target = path.startsWith("http") ? path : url(path, params);
    let response;
    try {
      response = await fetch(target, { method, headers, signal: more.signal,
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      const result = { ok: false, status: 0, body: { detail: String(err) }, etag: null };
      log.push({ method, url: target, status: 0 });
      return result;
    }
    const text = await response.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (err) { parsed = { detail: text }; }
    log.push({ method, url: target, status: response.status });
    return { ok: response.ok, status: response.status, body: parsed, etag: response.headers.get("ETag") };
  }

  /* GET that resolves to the JSON body, or throws an ApiError (with the message in the
     page's language). */
  async function get(path, params, extra) {
    const result = await request("GET", path, params, undefined, extra);
    if (!result.ok) throw new ApiError(result.status, result.body);
    return result.body;
  }

  async function post(path, body, extra) {
    const result = await request("POST", path, null, body, extra);
    if (!result.ok) throw new ApiError(result.status, result.body);
    return result.body;
  }

  /* A GET whose earlier call of the same `slot` is abandoned when a newer one starts
     (a quick second change must not be overtaken by the first one's late answer). */
  const slots = {};
  async function latest(slot, path, params) {
    if (slots[slot]) slots[slot].abort();
    const controller = (slots[slot] = new AbortController());
    try {
      return await get(path, params, { signal: controller.signal });
    } finally {
      if (slots[slot] === controller) delete slots[slot];
    }
  }

  /* What a request made by a library (the vector tiles' fetch) needs: the token, if any. */
  function fetchOptions() {
    const token = opts.token ? opts.token() : null;
    return token ? { headers: { Authorization: "Bearer " + token } } : {};
  }

  return { url, request, get, post, latest, fetchOptions };
}
