// Failures across all jobs: the alerts nobody acknowledged yet (with
// acknowledge), and the most recent failed attempts.

import { ApiError, get, id, post } from "./api.js";
import { badge, h, jobHref, notify, relative, replace, table, time } from "./dom.js";

const REFRESH_MS = 3000;
const LIMIT = 50;

export async function failuresPage(screen) {
  const alerts = h("div");
  const failed = h("div");
  replace(screen.root,
    h("h1", null, "Failures"),
    h("h2", null, "Unacknowledged alerts"), alerts,
    h("h2", null, "Recent failed attempts"), failed);
  const names = new JobNames();

  async function load() {
    const [open, recent] = await Promise.all([
      get("alerts", { acknowledged: false, limit: LIMIT }),
      get("executions", { status: "FAILED", limit: LIMIT }),
    ]);
    await names.resolve([...open.alerts, ...recent.executions].map((row) => row.jobId));
    if (screen.closed) return;
    replace(alerts, table(["Raised", "Kind", "Job", "Message", "Delivery", ""],
      open.alerts.map((alert) => alertRow(alert, names, load)), "No unacknowledged alerts."));
    replace(failed, table(["Scheduled", "Job", "Attempt", "HTTP", "Error", ""],
      recent.executions.map((e) => failureRow(e, names)), "No failed attempts."));
  }
  await screen.every(REFRESH_MS, load);
}

function alertRow(alert, names, reload) {
  const ack = h("button", {
    type: "button", class: "small", "data-action": "acknowledge",
    onclick: async () => {
      ack.disabled = true;
      try {
        await post(`alerts/${alert.alertId}/ack`);
        notify("Alert acknowledged.");
        await reload();
      } catch (error) {
        notify(error.message, true);
        ack.disabled = false;
      }
    },
  }, "Acknowledge");
  return h("tr", { class: "alert", dataset: { alertId: alert.alertId, jobId: alert.jobId || "" } },
    h("td", { title: alert.createdAt }, time(alert.createdAt),
      h("div", { class: "sub" }, relative(alert.createdAt))),
    h("td", null, badge(alert.kind, alert.kind === "recovered" ? "ok" : "bad")),
    h("td", null, alert.jobId ? names.link(alert.jobId) : h("span", { class: "muted" }, "system")),
    h("td", { class: "error" }, alert.message),
    h("td", null, alert.deliveryStatus === "none" ? "—" : alert.deliveryStatus,
      alert.deliveryError && h("div", { class: "sub" }, alert.deliveryError)),
    h("td", null, ack));
}

function failureRow(e, names) {
  return h("tr", { class: "failure", dataset: { executionId: e.executionId, jobId: e.jobId } },
    h("td", { title: e.scheduledAt }, time(e.scheduledAt),
      h("div", { class: "sub" }, relative(e.scheduledAt))),
    h("td", null, names.link(e.jobId)),
    h("td", { class: "num" }, e.attempt),
    h("td", { class: "num http" }, e.httpStatus ?? "—"),
    h("td", { class: "error" }, e.error || ""),
    h("td", null, e.final ? badge("final", "bad") : badge("will retry", "warn")));
}

// Job names by id, fetched once per page view (a deleted job keeps its id).
class JobNames {
  constructor() {
    this.names = new Map();
  }

  async resolve(jobIds) {
    const missing = [...new Set(jobIds)].filter((jobId) => jobId && !this.names.has(jobId));
    await Promise.all(missing.map(async (jobId) => {
      try {
        const job = await get(`jobs/${id(jobId)}`);
        this.names.set(jobId, job.name || `job ${jobId.slice(0, 8)}`);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
        this.names.set(jobId, null);
      }
    }));
  }

  link(jobId) {
    const name = this.names.get(jobId);
    if (name === null) return h("span", { class: "muted" }, `deleted job ${jobId.slice(0, 8)}`);
    return h("a", { href: jobHref(jobId), class: "job-name" }, name || jobId.slice(0, 8));
  }
}
