// Small DOM and formatting helpers shared by every page of the console.

/** Create an element: h("div", {class: "x", onclick: fn}, child, "text", ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const pad = (n) => String(n).padStart(2, "0");

/** Local date and time, seconds included: "2025-06-15 14:03:27". */
export function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
         `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A duration in seconds as "45 s", "12 min", "3 h 05 min", "2 d 4 h". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min`;
  const hrs = Math.floor(s / 3600);
  if (hrs < 48) return `${hrs} h ${pad(Math.floor((s % 3600) / 60))} min`;
  return `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
}

export function fmtAgo(iso) {
  if (!iso) return "–";
  return `${fmtDuration((Date.now() - new Date(iso).getTime()) / 1000)} ago`;
}

export function fmtPercent(ratio) {
  return ratio === null || ratio === undefined ? "–" : `${(ratio * 100).toFixed(1)} %`;
}

export function fmtBitrate(bps) {
  if (!bps) return "0 kb/s";
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} Mb/s` : `${Math.round(bps / 1e3)} kb/s`;
}

export const label = (value) => String(value ?? "").replaceAll("_", " ");

export function statusBadge(status) {
  return h("span", {class: `badge st-${status}`}, label(status));
}

export function severityBadge(severity) {
  return h("span", {class: `badge sev-${severity}`}, severity);
}

export function objectsText(objects) {
  const parts = Object.entries(objects || {}).map(([cls, n]) => `${n} ${cls}`);
  return parts.length ? parts.join(", ") : "–";
}
