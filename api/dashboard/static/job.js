// One job: what it is, its schedule, a chart of its recent calls, and its
// attempts page by page, refreshed while the first page is shown.

import { get, id, post } from "./api.js";
import { lineChart } from "./chart.js";
import {
  badge, duration, h, jobLabel, notify, pagerButtons, relative, replace, table, time,
} from "./dom.js";
import { jobActions, scheduleWords } from "./jobs.js";

const PAGE_SIZE = 20;
const CHART_SIZE = 60;
const REFRESH_MS = 2000;

export async function jobPage(screen, jobId) {
  const head = h("div");
  const facts = h("div");
  const charts = h("div", { class: "charts" });
  const history = h("div");
  const pager = h("div", { class: "pager" });
  const status = h("select", { "aria-label": "Status", onchange: () => { cursors.length = 1; loadHistory(); } },
    h("option", { value: "" }, "All attempts"), h("option", { value: "FAILED" }, "Failed"),
    h("option", { value: "SUCCESS" }, "Succeeded"), h("option", { value: "SKIPPED" }, "Skipped"));
  const cursors = [null];
  replace(screen.root, head, facts, h("h2", null, "Recent calls"), charts,
    h("div", { class: "toolbar" }, h("h2", null, "Executions"), status),
    history, pager);

  async function loadJob() {
    const job = await get(`jobs/${id(jobId)}`);
    const [preview, recent] = await Promise.all([
      get("schedules/preview", {
        schedule: job.schedule, timezone: job.timezone, startAt: job.startAt, endAt: job.endAt,
        runAt: job.runAt, count: 3,
      }),
      get(`jobs/${id(jobId)}/executions`, { limit: CHART_SIZE }),
    ]);
    if (screen.closed) return;
    showJob(job, preview);
    showCharts(recent.executions);
  }

  function showJob(job, preview) {
    replace(head, h("div", { class: "page-head" },
      h("div", null,
        h("h1", null, jobLabel(job), " ", badge(job.state)),
        h("p", { class: "muted mono" }, job.jobId)),
      jobActions(job, loadJob, { onDelete: () => { window.location.hash = "#/jobs"; } })));
    const fires = job.state === "active" ? preview.nextRuns.map(time).join(", ") || "no more fires"
      : job.state === "finished" ? `finished: its last fire was ${time(job.finishedAt)}` : "paused";
    replace(facts, h("dl", { class: "facts card" },
      h("dt", null, "Schedule"), h("dd", null, h("code", null, job.schedule),
        h("span", { class: "words" }, scheduleWords({ ...job, scheduleDescription: preview.description }))),
      h("dt", null, "Next fires"), h("dd", { class: "next-runs" }, fires),
      h("dt", null, "Target"), h("dd", null, h("span", { class: "mono" }, job.method), " ", job.api),
      h("dt", null, "Delivery"), h("dd", null,
        job.type === "ATMOST_ONCE" ? "at most once, never retried"
          : `at least once, up to ${job.maxRetries} retries (backoff ${duration(job.retryBackoffMs)})`),
      h("dt", null, "Timeout"), h("dd", null, duration(job.timeoutMs)),
      h("dt", null, "Success"), h("dd", null, job.successStatus.join(", ")),
      h("dt", null, "Misfire / overlap"), h("dd", null, `${job.misfire} / ${job.concurrency}`),
      job.alertWebhook && [h("dt", null, "Alert webhook"), h("dd", null, job.alertWebhook)],
      h("dt", null, "Updated"), h("dd", null, time(job.updatedAt))));
  }

  function showCharts(executions) {
    // Oldest first, calls only (a SKIPPED row made none).
    const calls = executions.filter((e) => e.status !== "SKIPPED").reverse();
    const point = (value) => (e) => ({
      value: value(e), failed: e.status === "FAILED",
      label: `${time(e.scheduledAt)} · attempt ${e.attempt} · ${e.status}`,
    });
    replace(charts,
      lineChart({ title: "Duration", points: calls.map(point((e) => e.durationMs)), name: "duration" }),
      lineChart({ title: "Lateness", points: calls.map(point((e) => e.latenessMs)), name: "lateness" }));
  }

  async function loadHistory() {
    const page = await get(`jobs/${id(jobId)}/executions`, {
      limit: PAGE_SIZE, status: status.value, cursor: cursors[cursors.length - 1],
    });
    if (screen.closed) return;
    replace(history, table(
      ["Scheduled", "Attempt", "Status", "HTTP", "Duration", "Lateness", "Error", ""],
      page.executions.map((e) => executionRow(e, loadHistory)), "No executions yet."));
    replace(pager, ...pagerButtons(cursors, page.nextCursor, loadHistory, ["Newer", "Older"]));
  }

  await screen.every(REFRESH_MS, async () => {
    await loadJob();
    if (cursors.length === 1) await loadHistory();  // older pages stay still while read
  });
}

function executionRow(e, reload) {
  return h("tr", { class: "execution", dataset: { executionId: e.executionId, status: e.status } },
    h("td", { title: e.scheduledAt }, time(e.scheduledAt),
      h("div", { class: "sub" }, relative(e.scheduledAt))),
    h("td", { class: "num" }, e.attempt),
    h("td", null, badge(e.status), e.final && " ", e.final && badge("final", "bad"),
      e.redelivered && " ", e.redelivered && badge("redelivered", "warn")),
    h("td", { class: "num http" }, e.httpStatus ?? "—"),
    h("td", { class: "num" }, duration(e.durationMs)),
    h("td", { class: "num" }, duration(e.latenessMs)),
    h("td", { class: "error" }, e.error || ""),
    h("td", null, e.status === "FAILED" && e.final && h("button", {
      type: "button", class: "small",
      onclick: async () => {
        try {
          const fire = await post(`executions/${id(e.executionId)}/replay`);
          notify(`Replay queued as attempt ${fire.attempt}.`);
          await reload();
        } catch (error) {
          notify(error.message, true);
        }
      },
    }, "Replay")));
}
