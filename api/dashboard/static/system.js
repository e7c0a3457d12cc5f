// The system: health of the database, Redis, the leader and the workers;
// queue depths; calls per second and lateness percentiles. All from /health
// and /stats, which read the same totals as /metrics; rates and "last
// minute" percentiles are the difference between two readings.

import { get } from "./api.js";
import { duration, h, replace, table, time } from "./dom.js";

const REFRESH_MS = 2000;
const WINDOW_MS = 60000;

export async function systemPage(screen) {
  const health = h("div", { class: "cards", id: "health" });
  const queues = h("div", { class: "cards", id: "queues" });
  const throughput = h("div", { class: "cards", id: "throughput" });
  const shards = h("div", { id: "shards" });
  const updated = h("p", { class: "muted small" });
  replace(screen.root, h("h1", null, "System"), updated,
    h("h2", null, "Health"), health,
    h("h2", null, "Throughput and lateness"), throughput,
    h("h2", null, "Queues"), queues, shards);
  const readings = [];  // [{at, stats}] over the last minute

  async function load() {
    const [state, stats] = await Promise.all([
      get("health", { deep: 1 }, { accept: [503] }),  // a 503 says what is down
      get("stats"),
    ]);
    if (screen.closed) return;
    const at = Date.now();
    if (readings.length && callCount(stats) < callCount(readings[readings.length - 1].stats)) {
      readings.length = 0;  // the totals restarted (Redis lost them)
    }
    readings.push({ at, stats });
    while (readings.length > 2 && at - readings[1].at >= WINDOW_MS) readings.shift();
    showHealth(health, state);
    showThroughput(throughput, readings);
    showQueues(queues, stats);
    showShards(shards, stats.queue);
    replace(updated, `Updated ${time(new Date(at).toISOString())}, every ${REFRESH_MS / 1000} s.`);
  }
  await screen.every(REFRESH_MS, load);
}

function card(name, value, detail, down = false) {
  return h("div", { class: down ? "card down" : "card", dataset: { card: name } },
    h("div", { class: "label" }, name),
    h("div", { class: value.includes(" / ") ? "value several" : "value" }, value),
    detail && h("div", { class: "detail" }, detail));
}

const COMPONENTS = [
  ["database", "Database", (c) => `${c.latencyMs} ms`],
  ["redis", "Redis", (c) => `${c.latencyMs} ms`],
  ["leader", "Leader", (c) => `${c.id}, lease held ${duration(c.leaseAgeMs)}`],
  ["workers", "Workers", (c) => `${c.alive} alive`],
  ["readyQueue", "Ready queue", (c) => `oldest waited ${duration(c.oldestAgeMs)}`],
];

function showHealth(root, state) {
  replace(root, COMPONENTS.map(([key, name, detail]) => {
    const c = state[key];
    if (!c) return card(name, "unknown", null, true);
    return h("div", { class: c.ok ? "card" : "card down", dataset: { component: key, ok: String(c.ok) } },
      h("div", { class: "label" }, name),
      h("div", { class: "value" }, c.ok ? "ok" : "down"),
      h("div", { class: "detail" }, c.ok ? detail(c) : c.error));
  }));
}

function callCount(stats) {
  return (stats.executions.SUCCESS || 0) + (stats.executions.FAILED || 0);
}

function showThroughput(root, readings) {
  const { stats: before, at: since } = readings[0];
  const { stats: now, at } = readings[readings.length - 1];
  const seconds = (at - since) / 1000;
  const window = seconds > 0 ? `over the last ${Math.round(seconds)} s` : "measuring…";
  const perSecond = (count) => (seconds > 0 ? `${(count / seconds).toFixed(1)}/s` : "…");
  const failures = (now.executions.FAILED || 0) - (before.executions.FAILED || 0);
  const lateness = windowed(before.latency.lateness, now.latency.lateness);
  const calls = windowed(before.latency.callDuration, now.latency.callDuration);
  const sinceStart = now.latency.lateness;
  replace(root,
    card("Executions/s", perSecond(callCount(now) - callCount(before)), window),
    card("Failures/s", perSecond(failures), window),
    card("Lateness p50 / p90 / p99", percentiles(lateness.count, lateness.p50, lateness.p90, lateness.p99),
      `${lateness.count} calls ${window}; since start ${percentiles(sinceStart.count,
        sinceStart.p50Ms, sinceStart.p90Ms, sinceStart.p99Ms)}`),
    card("Call duration p50 / p99", percentiles(calls.count, calls.p50, calls.p99),
      `${calls.count} calls ${window}`),
    card("Attempts recorded", String(callCount(now) + (now.executions.SKIPPED || 0)),
      Object.entries(now.executions).map(([status, n]) => `${status} ${n}`).join(", ") || "none yet"));
}

function percentiles(count, ...values) {
  return count ? values.map(duration).join(" / ") : "—";
}

// Percentiles of the observations made between two readings of a histogram,
// estimated as /stats (and Prometheus' histogram_quantile) does.
function windowed(before, after) {
  const count = after.count - before.count;
  const buckets = after.buckets.map((b, i) => ({ leMs: b.leMs, count: b.count - before.buckets[i].count }));
  const at = (q) => quantile(q, buckets, count);
  return { count, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

function quantile(q, buckets, count) {
  if (!count) return null;
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (const bucket of buckets) {
    if (bucket.count >= rank) {
      const inside = bucket.count - below;
      return lower + (bucket.leMs - lower) * (inside ? (rank - below) / inside : 1);
    }
    lower = bucket.leMs;
    below = bucket.count;
  }
  return buckets.length ? buckets[buckets.length - 1].leMs : null;
}

function showQueues(root, stats) {
  const q = stats.queue;
  replace(root,
    card("Scheduled jobs", String(q.scheduled), stats.jobs
      ? `${stats.jobs.enabled} enabled of ${stats.jobs.total}` : "database down", !stats.database.ok),
    card("Ready", String(q.ready), q.oldestReadyAgeMs == null ? "empty"
      : `oldest waited ${duration(q.oldestReadyAgeMs)}`),
    card("In flight", String(q.inflight), `held by ${q.workersAlive} live workers`),
    card("Retry backlog", String(q.retry), "attempts waiting for their time"),
    card(q.shards.length > 1 ? "Leaders" : "Leader", q.leader || "none",
      q.leaderless.length ? `no dispatcher leads shard ${q.leaderless.join(", ")}`
        : `lease held ${duration(q.leaseAgeMs)}`, q.leaderless.length > 0));
}

// With JOBSCHED_SHARDS above 1: each shard's leader and queues.
function showShards(root, queue) {
  const shards = queue.shards;
  if (shards.length < 2) {
    replace(root);
    return;
  }
  const num = (value) => h("td", { class: "num" }, String(value));
  const [from, to] = queue.layout.split(">");
  const title = to ? `Shards: resharding from ${from} to ${to}` : `Shards (${shards.length})`;
  const label = (s) => (s.retiring ? `${s.shard} (retiring)` : String(s.shard));
  replace(root, h("h2", null, title), table(
    ["Shard", "Leader", "Scheduled", "Ready", "In flight", "Retry", "Oldest ready"],
    shards.map((s) => h("tr", { dataset: { shard: label(s) } },
      num(label(s)),
      h("td", null, s.leader || "none",
        s.leader && h("div", { class: "sub" }, `lease held ${duration(s.leaseAgeMs)}`)),
      num(s.scheduled), num(s.ready), num(s.inflight), num(s.retry),
      h("td", null, s.oldestReadyAgeMs == null ? "empty" : duration(s.oldestReadyAgeMs)))),
    "no shards"));
}
