/* The page's state in its URL (history API): every choice, the map's centre and zoom and
   the selected unit, so that a link reopens exactly this view. */

export function createUrlState(keys) {
  function read() {
    const params = new URLSearchParams(window.location.search);
    const state = {};
    for (const key of keys) if (params.has(key)) state[key] = params.get(key);
    return state;
  }

  function query(state) {
    const params = new URLSearchParams();
    for (const key of keys) {
      const value = state[key];
      if (value !== null && value !== undefined && value !== "") params.set(key, String(value));
    }
    return params.toString();
  }

  /* Write the state: a new history entry for a choice (`push`), the same entry for a
     map move, so Back undoes choices rather than every pan. */
  function write(state, push) {
    const target = window.location.pathname + "?" + query(state);
    if (target === window.location.pathname + window.location.search) return;
    if (push) window.history.pushState(null, "", target);
    else window.history.replaceState(null, "", target);
  }

  function onBack(handler) {
    window.addEventListener("popstate", () => handler(read()));
  }

  return { read, write, query, onBack };
}
