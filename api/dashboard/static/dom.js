// Building elements and formatting values. Data only ever reaches the page
// as text nodes or attribute values (never as markup), so a job named
// "<img onerror=…>" is shown as those characters.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "class") el.className = value;
    else if (key === "value" || key === "checked") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export function badge(text, kind = text) {
  return h("span", { class: `badge ${kind}` }, text);
}

// Times: the API speaks ISO 8601 UTC; the page shows UTC (as the header says).
export function time(iso) {
  if (!iso) return "—";
  return iso.replace("T", " ").replace(/\.\d{3}Z$/, "");
}

export function clock(iso) {
  return iso ? iso.slice(11, 19) : "—";
}

export function relative(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  const size = Math.abs(seconds);
  const amount = size < 60 ? `${size} s` : size < 3600 ? `${Math.round(size / 60)} min`
    : size < 172800 ? `${Math.round(size / 3600)} h` : `${Math.round(size / 86400)} d`;
  if (size === 0) return "now";
  return seconds > 0 ? `in ${amount}` : `${amount} ago`;
}

export function duration(ms) {
  if (ms == null) return "—";
  if (Math.abs(ms) < 1000) return `${Math.round(ms * 10) / 10} ms`;
  if (Math.abs(ms) < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

export function percent(rate) {
  return rate == null ? "—" : `${Math.round(rate * 1000) / 10} %`;
}

export function jobLabel(job) {
  return job.name || `job ${job.jobId.slice(0, 8)}`;
}

export function jobHref(jobId) {
  return `#/jobs/${encodeURIComponent(jobId)}`;
}

export function table(headings, rows, emptyText) {
  const body = rows.length ? rows
    : [h("tr", null, h("td", { class: "empty", colspan: headings.length }, emptyText))];
  return h("div", { class: "table-wrap" },
    h("table", null,
      h("thead", null, h("tr", null, headings.map((title) => h("th", null, title)))),
      h("tbody", null, body)));
}

// Back/forward buttons over keyset pages: `cursors` is the stack of the
// cursors of the pages seen so far; `load` shows the page on top of it.
export function pagerButtons(cursors, nextCursor, load, [backLabel, forwardLabel]) {
  return [
    cursors.length > 1 && h("button", {
      type: "button", onclick: () => { cursors.pop(); load(); },
    }, backLabel),
    nextCursor && h("button", {
      type: "button", onclick: () => { cursors.push(nextCursor); load(); },
    }, forwardLabel),
  ];
}

// A short message under the header: what an action did, or what failed.
let noticeTimer = null;
export function notify(message, isError = false) {
  const el = document.getElementById("notice");
  el.textContent = message;
  el.classList.toggle("error", isError);
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, isError ? 10000 : 4000);
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
