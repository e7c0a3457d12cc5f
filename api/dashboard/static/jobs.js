// The jobs table: every job with its schedule in words and next fires, its
// last status and success rate; search, filter, and the actions on a job.

import { del, get, id, post } from "./api.js";
import {
  badge, debounce, h, jobHref, jobLabel, notify, pagerButtons, percent, relative, replace, table,
  time,
} from "./dom.js";

const PAGE_SIZE = 25;
const REFRESH_MS = 5000;

// Kept while the tab is open, so coming back to the table keeps the search.
const filters = { name: "", enabled: "" };

export async function jobsPage(screen) {
  const cursors = [null];  // the cursor of each page shown so far
  const body = h("div");
  const pager = h("div", { class: "pager" });
  const reload = () => screen.every(REFRESH_MS, load);

  const search = h("input", {
    type: "search", placeholder: "Search by name", value: filters.name, "aria-label": "Search by name",
    oninput: debounce(() => { filters.name = search.value.trim(); cursors.length = 1; load(); }, 300),
  });
  const state = h("select", {
    "aria-label": "Show",
    onchange: () => { filters.enabled = state.value; cursors.length = 1; load(); },
  }, h("option", { value: "" }, "All jobs"), h("option", { value: "true" }, "Active"),
  h("option", { value: "false" }, "Paused"));
  state.value = filters.enabled;

  replace(screen.root,
    h("div", { class: "page-head" },
      h("div", null, h("h1", null, "Jobs"),
        h("p", { class: "muted" }, "Success rate over each job's last 50 calls.")),
      h("div", { class: "actions" }, h("a", { class: "button primary", href: "#/jobs/new" }, "New job"))),
    h("div", { class: "toolbar" }, search, state),
    body, pager);

  async function load() {
    const page = await get("jobs:overview", {
      limit: PAGE_SIZE, name: filters.name, enabled: filters.enabled,
      cursor: cursors[cursors.length - 1],
    });
    if (screen.closed) return;
    replace(body, table(
      ["Name", "Schedule", "Target", "Type", "State", "Last status", "Success", "Next run", ""],
      page.jobs.map((job) => jobRow(job, load)),
      filters.name || filters.enabled ? "No job matches." : "No jobs yet: create one."));
    replace(pager, ...pagerButtons(cursors, page.nextCursor, load, ["Previous", "Next"]));
  }
  await reload();
}

function jobRow(job, reload) {
  const rate = job.successRate;
  const rateClass = rate == null ? "" : rate >= 0.99 ? "rate-good" : rate >= 0.9 ? "rate-mid" : "rate-bad";
  return h("tr", { dataset: { jobId: job.jobId } },
    h("td", null, h("a", { href: jobHref(job.jobId), class: "job-name" }, jobLabel(job)),
      h("div", { class: "sub mono" }, job.jobId.slice(0, 8))),
    h("td", null, h("code", null, job.schedule),
      h("div", { class: "sub" }, scheduleWords(job)),
      job.nextRuns.length > 0 && h("div", { class: "sub next-runs" },
        `next: ${job.nextRuns.map((iso) => time(iso).slice(11)).join(", ")}`)),
    h("td", { class: "target" }, h("span", { class: "mono" }, job.method), " ", job.api),
    h("td", null, job.type === "ATMOST_ONCE" ? "at most once" : "at least once"),
    h("td", null, badge(job.state)),
    h("td", { class: "last-status" }, job.lastStatus ? badge(job.lastStatus) : h("span", { class: "muted" }, "never ran"),
      job.lastRunAt && h("div", { class: "sub", title: job.lastRunAt }, relative(job.lastRunAt))),
    h("td", { class: "num" }, h("span", { class: rateClass }, percent(rate)),
      job.recentAttempts > 0 && h("div", { class: "sub" }, `of ${job.recentAttempts}`)),
    h("td", { title: job.nextRun || "" }, job.nextRun ? relative(job.nextRun) : "—",
      job.nextRun && h("div", { class: "sub" }, time(job.nextRun))),
    h("td", null, jobActions(job, reload)));
}

export function scheduleWords(job) {
  const words = job.scheduleDescription || "";
  return job.timezone && job.timezone !== "UTC" && words ? `${words} (${job.timezone})` : words;
}

// Pause/resume, run now, edit, delete: each then calls `done` to show the result.
export function jobActions(job, done, { onDelete } = {}) {
  const act = (label, work, message) => h("button", {
    type: "button", class: "small", "data-action": label.toLowerCase().replace(" ", "-"),
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        const result = await work();
        if (result !== false) {
          notify(message(result));
          await done();
        }
      } catch (error) {
        notify(error.message, true);
      } finally {
        event.target.disabled = false;
      }
    },
  }, label);
  const name = jobLabel(job);
  return h("div", { class: "actions" },
    job.enabled
      ? act("Pause", () => post(`jobs/${id(job.jobId)}/pause`), () => `Paused ${name}.`)
      : act("Resume", () => post(`jobs/${id(job.jobId)}/resume`), () => `Resumed ${name}.`),
    act("Run now", () => post(`jobs/${id(job.jobId)}/run`),
      (fire) => `Queued a run of ${name} (execution ${fire.executionId}).`),
    h("a", { class: "button small", href: `${jobHref(job.jobId)}/edit` }, "Edit"),
    act("Delete", async () => {
      if (!window.confirm(`Delete ${name}? Its history is kept.`)) return false;
      await del(`jobs/${id(job.jobId)}`);
      if (onDelete) onDelete();
      return true;
    }, () => `Deleted ${name}.`));
}
