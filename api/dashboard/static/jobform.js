// Create or edit a job. The API is the validator: its error names a field,
// and the message is shown next to that field. The schedule is read back in
// words, with its next fires, while it is typed.

import { ApiError, get, id, post, put } from "./api.js";
import { debounce, h, jobHref, jobLabel, notify, replace, time } from "./dom.js";

// name, label, how it is entered, hint; `more` fields sit under "More settings".
const FIELDS = [
  { name: "name", label: "Name", hint: "Free text, shown in lists and alerts." },
  { name: "schedule", label: "Schedule", mono: true, placeholder: "*/5 * * * * *",
    hint: "cron: sec min hour dom mon dow (5 fields: second 0), or @once with Run at." },
  { name: "api", label: "Target URL", type: "url", placeholder: "https://example.com/hook", wide: true },
  { name: "method", label: "Method", options: ["POST", "GET", "PUT", "PATCH", "DELETE"] },
  { name: "type", label: "Delivery", options: [["ATLEAST_ONCE", "at least once (retried)"],
    ["ATMOST_ONCE", "at most once (never retried)"]] },
  { name: "timezone", label: "Time zone", placeholder: "UTC", hint: "IANA name the cron is read in." },
  { name: "enabled", label: "Enabled", checkbox: true },
  { name: "headers", label: "Headers", json: true, more: true, placeholder: '{"Authorization": "Bearer …"}',
    hint: "A JSON object of header names to values." },
  { name: "bodyKind", label: "Body", more: true, options: [["none", "no body"],
    ["json", "JSON (sent as application/json)"], ["text", "text (sent as is)"]] },
  { name: "body", label: "Body content", more: true, textarea: true, wide: true },
  { name: "timeoutMs", label: "Timeout (ms)", number: true, more: true, placeholder: "10000" },
  { name: "maxRetries", label: "Retries", number: true, more: true, placeholder: "3" },
  { name: "retryBackoffMs", label: "Retry backoff (ms)", number: true, more: true, placeholder: "1000" },
  { name: "successStatus", label: "Success statuses", more: true, placeholder: "200-299",
    hint: "Codes or ranges, comma separated: 200, 300-303." },
  { name: "misfire", label: "Misfire", more: true, options: [["skip", "skip late fires"],
    ["fire_once", "fire once to catch up"]] },
  { name: "concurrency", label: "Overlap", more: true, options: [["allow", "allow"],
    ["forbid", "forbid (skip while running)"]] },
  { name: "alertWebhook", label: "Alert webhook", type: "url", more: true },
  { name: "autoDisableAfter", label: "Disable after failures", number: true, more: true,
    hint: "Fires in a row that failed for good." },
  { name: "startAt", label: "Start at", more: true, placeholder: "2026-12-01T09:00:00Z" },
  { name: "endAt", label: "End at", more: true, placeholder: "2026-12-31T18:00:00Z" },
  { name: "runAt", label: "Run at (@once)", more: true, placeholder: "2026-12-01T09:00:00Z" },
];
const TIMING = ["schedule", "timezone", "startAt", "endAt", "runAt"];

export async function jobForm(screen, jobId) {
  const job = jobId ? await get(`jobs/${id(jobId)}`) : null;
  if (screen.closed) return;
  const fields = new Fields();
  const basic = h("div", { class: "fields" }, FIELDS.filter((f) => !f.more).map((f) => fields.add(f)));
  fields.more.append(h("div", { class: "fields" }, FIELDS.filter((f) => f.more).map((f) => fields.add(f))));
  fill(fields.inputs, job);
  const submit = h("button", { type: "submit", class: "primary" }, job ? "Save" : "Create job");
  const form = h("form", { class: "job", novalidate: true }, basic, fields.more, fields.formError,
    h("div", { class: "form-actions" }, submit,
      h("a", { class: "button", href: job ? jobHref(job.jobId) : "#/jobs" }, "Cancel")));
  replace(screen.root,
    h("h1", null, job ? `Edit ${jobLabel(job)}` : "New job"),
    job && h("p", { class: "muted mono" }, job.jobId),
    form);

  const preview = debounce(() => previewSchedule(fields, screen), 300);
  for (const name of TIMING) fields.inputs[name].addEventListener("input", preview);
  previewSchedule(fields, screen);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fields.clearErrors();
    submit.disabled = true;
    try {
      const payload = readForm(fields.inputs);
      const saved = job ? await put(`jobs/${id(job.jobId)}`, payload) : await post("jobs", payload);
      notify(job ? `Saved ${jobLabel(saved)}.` : `Created ${jobLabel(saved)}.`);
      window.location.hash = jobHref(saved.jobId);
    } catch (error) {
      fields.showError(error);
    } finally {
      submit.disabled = false;
    }
  });
  fields.inputs.schedule.focus();
}

// The form's fields: their inputs, and the error shown under each.
class Fields {
  constructor() {
    this.inputs = {};
    this.errors = {};
    this.blocks = {};
    this.reading = h("p", { class: "reading", "aria-live": "polite" });
    this.formError = h("p", { class: "field-error form-error", role: "alert" });
    this.more = h("details", { class: "more" }, h("summary", null, "More settings"));
  }

  add(spec) {
    const input = control(spec);
    input.id = `field-${spec.name}`;
    this.inputs[spec.name] = input;
    this.errors[spec.name] = h("p", { class: "field-error", "data-error-for": spec.name, role: "alert" });
    this.blocks[spec.name] = h("div", {
      class: `field${spec.wide || spec.textarea ? " wide" : ""}${spec.checkbox ? " check" : ""}`,
      "data-field": spec.name,
    },
    h("label", { for: input.id }, spec.label), input, this.errors[spec.name],
    spec.name === "schedule" && this.reading,
    spec.hint && h("p", { class: "hint" }, spec.hint));
    return this.blocks[spec.name];
  }

  // Next to the field the error names ("headers.X-Y" and "successStatus.0"
  // belong to their field), or under the form when it names none of ours.
  showError(error, { focus = true } = {}) {
    const field = error.field ? error.field.split(/[.[]/)[0] : null;
    if (!(error instanceof ApiError || error instanceof FormError) || !this.errors[field]) {
      this.formError.textContent = error.message;
      return;
    }
    this.errors[field].textContent = error.message;
    this.blocks[field].classList.add("invalid");
    if (this.more.contains(this.blocks[field])) this.more.open = true;
    if (focus) this.inputs[field].focus();
  }

  // The errors of the named fields, or all of them and the form's.
  clearErrors(names) {
    for (const name of names || Object.keys(this.errors)) {
      this.errors[name].textContent = "";
      this.blocks[name].classList.remove("invalid");
    }
    if (!names) this.formError.textContent = "";
  }
}

function control(spec) {
  if (spec.checkbox) return h("input", { type: "checkbox", name: spec.name });
  if (spec.options) {
    return h("select", { name: spec.name }, spec.options.map((option) => {
      const [value, text] = Array.isArray(option) ? option : [option, option];
      return h("option", { value }, text);
    }));
  }
  if (spec.json || spec.textarea) {
    return h("textarea", { name: spec.name, placeholder: spec.placeholder, spellcheck: "false" });
  }
  // Numbers are typed as text: what is not a number goes to the API as is,
  // and the API's error names the field.
  return h("input", {
    type: spec.type || "text", name: spec.name, placeholder: spec.placeholder, autocomplete: "off",
    inputmode: spec.number ? "numeric" : null, class: spec.mono ? "mono" : null, spellcheck: "false",
  });
}

function fill(inputs, job) {
  const value = (name, text) => { inputs[name].value = text == null ? "" : String(text); };
  inputs.enabled.checked = job ? job.enabled : true;
  inputs.method.value = job ? job.method : "POST";
  inputs.type.value = job ? job.type : "ATLEAST_ONCE";
  inputs.misfire.value = job ? job.misfire : "skip";
  inputs.concurrency.value = job ? job.concurrency : "allow";
  value("timezone", job ? job.timezone : "UTC");
  if (!job) {
    inputs.bodyKind.value = "none";
    return;
  }
  for (const name of ["name", "schedule", "api", "timeoutMs", "maxRetries", "retryBackoffMs",
    "alertWebhook", "autoDisableAfter", "startAt", "endAt", "runAt"]) value(name, job[name]);
  value("successStatus", (job.successStatus || []).join(", "));
  value("headers", Object.keys(job.headers || {}).length ? JSON.stringify(job.headers, null, 2) : "");
  inputs.bodyKind.value = job.body == null ? "none" : typeof job.body === "string" ? "text" : "json";
  value("body", job.body == null ? "" : typeof job.body === "string" ? job.body
    : JSON.stringify(job.body, null, 2));
}

class FormError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

// The job as the API takes it; empty fields are left out (their defaults apply).
function readForm(inputs) {
  const text = (name) => inputs[name].value.trim();
  const job = { enabled: inputs.enabled.checked };
  for (const name of ["name", "schedule", "api", "timezone", "method", "type", "misfire",
    "concurrency", "alertWebhook", "startAt", "endAt", "runAt"]) {
    if (text(name)) job[name] = text(name);
  }
  for (const name of ["timeoutMs", "maxRetries", "retryBackoffMs", "autoDisableAfter"]) {
    if (text(name)) job[name] = /^-?\d+$/.test(text(name)) ? Number(text(name)) : text(name);
  }
  if (text("successStatus")) {
    job.successStatus = text("successStatus").split(",").map((s) => s.trim()).filter(Boolean)
      .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  }
  if (text("headers")) job.headers = parseJson("headers", text("headers"));
  const kind = inputs.bodyKind.value;
  if (kind === "json" && text("body")) job.body = parseJson("body", text("body"));
  if (kind === "text") job.body = inputs.body.value;
  if (kind === "none" && text("body")) {
    throw new FormError("bodyKind", "Choose how the body is sent, or leave it empty.");
  }
  return job;
}

function parseJson(field, raw) {
  try {
    return JSON.parse(raw);
  } catch (error) {
    throw new FormError(field, `${field} is not valid JSON: ${error.message}`);
  }
}

// The schedule in words and its next fires while it is typed; a timing the
// API refuses shows its error by the field, as a submit would.
async function previewSchedule(fields, screen) {
  const query = {};
  for (const name of TIMING) query[name] = fields.inputs[name].value.trim();
  if (!query.schedule) {
    replace(fields.reading);
    return;
  }
  const current = () => TIMING.every((name) => fields.inputs[name].value.trim() === query[name]);
  let preview;
  try {
    preview = await get("schedules/preview", query);
  } catch (error) {
    if (screen.closed || !current() || !(error instanceof ApiError) || error.status !== 400) return;
    fields.clearErrors(TIMING);
    replace(fields.reading);
    fields.showError(error, { focus: false });  // the person is still typing
    return;
  }
  if (screen.closed || !current()) return;
  fields.clearErrors(TIMING);
  replace(fields.reading, [preview.description, preview.nextRuns.length
    ? `next: ${preview.nextRuns.map(time).join(", ")}` : "no more fires"]
    .filter(Boolean).join(" · "));
}
