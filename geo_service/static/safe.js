/* Text from data (unit names, codes, reasons, messages from the API) reaches the pages only
   as text: through `text` (a text node) or `escape` (for the HTML strings Leaflet's
   tooltips and popups take). Both pages use these and nothing else. */
(function () {
  "use strict";
  const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  function escape(value) {
    const text = value === null || value === undefined ? "" : String(value);
    return text.replace(/[&<>"']/g, (c) => ENTITIES[c]);
  }

  function text(value) {
    return document.createTextNode(value === null || value === undefined ? "" : String(value));
  }

  /* The page's settings, written by the service as JSON data (never run). */
  function config(id) {
    return JSON.parse(document.getElementById(id).textContent);
  }

  window.geoSafe = { escape, text, config };
})();
