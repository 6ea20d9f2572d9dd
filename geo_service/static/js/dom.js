/* Building the pages' DOM: every text from data or the API becomes a text node
   (textContent), never HTML; no page assembles HTML from strings. */

const SVG_NS = "http://www.w3.org/2000/svg";

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function setAttributes(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key in { value: 1, checked: 1, selected: 1, disabled: 1, hidden: 1 } && !(el instanceof SVGElement)) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  return el;
}

/* h("div", {class: "x", onclick: f}, "text", child, [more]) */
export function h(tag, attrs, ...children) {
  return append(setAttributes(document.createElement(tag), attrs), children);
}

/* The same for SVG elements (charts). */
export function s(tag, attrs, ...children) {
  return append(setAttributes(document.createElementNS(SVG_NS, tag), attrs), children);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/* Replace an element's children. */
export function fill(el, ...children) {
  return append(clear(el), children);
}

/* The page's settings, written by the service as JSON data (never run). */
export function config(id) {
  return JSON.parse(document.getElementById(id).textContent);
}

/* A file made in the page (a CSV of a table), offered for download. */
export function download(filename, text, type) {
  const blob = new Blob([text], { type: type || "text/csv;charset=utf-8" });
  const a = h("a", { href: URL.createObjectURL(blob), download: filename, hidden: true });
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 0);
}
