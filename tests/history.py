"""The fire-integrity checker: what each job may and must receive, derived
from the API's answers, checked against every call the target recorded.

This is the definition of jobsched's semantics, rule by rule:

- after a DELETE answered, no call of the job starts (a call that had
  passed its last check before the delete reached Redis may still be
  written up to ``slack_ms`` later: that is "already on the wire");
- after a pause answered, no scheduled call starts until the job is
  changed again (a run-now of the paused job is a call the user asked for);
- after an edit answered, no call starts with an older URL or body;
- every scheduled fire of an enabled ATLEAST_ONCE job (overlap "allow") is
  called, from the first fire after the edit's answer plus the
  dispatch-ahead time (fires up to then may have been claimed under the
  previous definition) until the next operation on the job; a fire that was
  late enough for a pause or delete invoked before its call to catch it may
  instead be recorded as skipped for that reason;
- one call per execution id: a duplicate is allowed only for a fire the
  killed worker held (at-least-once), never for ATMOST_ONCE;
- a one-time job is called only at the instants (runAt) it was given, each
  once;
- never early: no call arrives before its scheduled instant;
- overlap "forbid": calls of a job never overlap;
- every call made is recorded (one row per attempt), except the calls of a
  killed worker that it had not recorded yet.

A call's start is when the worker wrote it (its row's startedAt), or its
arrival at the target if it has no row of its own.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from common.schedule import Timing, next_fire

# The start of the error of a row written for an at-most-once call whose
# worker died (worker/runner.py: LOST).
LOST = "the worker holding this at-most-once call stopped"
# Operations that answer with the job as it now is.
DEFINING = ("create", "put", "patch_name", "patch_url", "pause", "resume", "race_patch_pause")


@dataclass
class Op:
    job: str
    kind: str
    invoked_ms: int
    answered_ms: int
    ok: bool
    view: dict | None = None   # the job in the answer (the last one of a race)
    gen: int | None = None     # the URL/body generation written (create, put, patch_url)
    manual: str | None = None  # run now: the execution id answered
    deleted: bool = False      # the job is gone after this operation


@dataclass
class Call:
    job: str
    execution_id: str
    attempt: int
    scheduled_ms: int
    arrived_ms: int
    answered_ms: int | None
    gen: int
    body_gen: int | None
    sleep_ms: int


@dataclass
class Row:
    execution_id: str
    attempt: int
    status: str
    started_ms: int
    error: str | None


@dataclass
class Fault:
    kind: str                  # "worker" or "leader"
    at_ms: int
    held: set = field(default_factory=set)   # execution ids the killed worker held


RULES = ("calls after delete", "calls after pause", "stale URL or body",
         "ATLEAST_ONCE fires never called", "duplicates not explained by a kill",
         "ATMOST_ONCE calls > 1", "one-time jobs called twice", "early calls",
         "overlapping calls (forbid)", "calls not recorded")


@dataclass
class Report:
    counts: dict = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    examples: dict = field(default_factory=lambda: defaultdict(list))
    info: dict = field(default_factory=dict)

    def add(self, rule: str, example: str) -> None:
        self.counts[rule] += 1
        if len(self.examples[rule]) < 5:
            self.examples[rule].append(example)

    def violations(self) -> dict:
        return {rule: n for rule, n in self.counts.items() if n}

    def describe(self) -> str:
        lines = [f"{rule:<38}{n:>6}" for rule, n in self.counts.items()]
        lines += [f"{name:<38}{value:>6}" for name, value in self.info.items()]
        for rule, found in self.examples.items():
            lines += [f"  {rule}: {e}" for e in found]
        return "\n".join(lines)


def state(view: dict) -> str:
    return view.get("state") or ("active" if view["enabled"] else "paused")


def timing_of(view: dict) -> Timing:
    from api.schemas import parse_instant

    def instant(name):
        return parse_instant(view[name]) if view.get(name) else None
    return Timing(view["schedule"], view["timezone"], instant("startAt"), instant("endAt"),
                  instant("runAt"))


def fires(timing: Timing, after_ms: int, until_ms: int) -> list[int]:
    """The scheduled fires in (after_ms, until_ms]."""
    found, t = [], after_ms
    while True:
        t = next_fire(timing, t)
        if t is None or t > until_ms:
            return found
        found.append(t)


def check(ops: list[Op], calls: list[Call], rows: list[Row], faults: list[Fault],
          end_ms: int, ahead_ms: int, slack_ms: int) -> Report:
    report = Report()
    by_job: dict[str, list[Op]] = defaultdict(list)
    for op in sorted(ops, key=lambda o: o.answered_ms):
        if op.ok:
            by_job[op.job].append(op)
    definitions = {(op.job, op.gen): op.view for op in ops if op.ok and op.gen is not None}
    manual = {op.manual for op in ops if op.manual}
    held = set().union(*(f.held for f in faults if f.kind == "worker"))
    calls_of: dict[str, list[Call]] = defaultdict(list)
    per_attempt: dict[tuple[str, int], int] = defaultdict(int)
    for call in calls:
        calls_of[call.job].append(call)
        per_attempt[(call.execution_id, call.attempt)] += 1
    started: dict[tuple[str, int], int] = {}
    skipped: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        key = (row.execution_id, row.attempt)
        if row.status == "SKIPPED":
            skipped[row.execution_id].append(row)
        elif per_attempt[key] == 1 and not (row.error or "").startswith(LOST):
            # (A duplicate's rows cannot be told apart; a lost call's row is
            # written later by another worker and knows no start.)
            started[key] = row.started_ms

    def start(call: Call) -> int:
        return started.get((call.execution_id, call.attempt), call.arrived_ms)

    for job, history in by_job.items():
        job_calls = calls_of.get(job, [])
        for i, op in enumerate(history):
            next_invoked = history[i + 1].invoked_ms if i + 1 < len(history) else None
            if op.deleted:
                for call in job_calls:
                    if start(call) > op.answered_ms + slack_ms:
                        report.add("calls after delete", f"{call.execution_id} started "
                                   f"{start(call) - op.answered_ms} ms after the delete")
            elif op.view and op.kind in DEFINING and state(op.view) == "paused":
                for call in job_calls:
                    s = start(call)
                    if call.execution_id not in manual and s > op.answered_ms + slack_ms \
                            and (next_invoked is None or s < next_invoked):
                        report.add("calls after pause", f"{call.execution_id} started "
                                   f"{s - op.answered_ms} ms after the pause")
            if op.gen is not None:
                for call in job_calls:
                    if start(call) > op.answered_ms + slack_ms and \
                            (call.gen < op.gen or call.body_gen != call.gen):
                        report.add("stale URL or body", f"{call.execution_id} carried "
                                   f"{call.gen}/{call.body_gen} after {op.gen} answered")
            stopped = [o.invoked_ms for o in history[i + 1:]
                       if o.deleted or o.kind in ("pause", "race_patch_pause")]
            _required_fires(report, op, next_invoked, end_ms, ahead_ms, slack_ms, job_calls,
                            skipped, min(stopped, default=None))

    per_fire: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        per_fire[call.execution_id].append(call)
    duplicates_after_kill = 0
    for execution_id, group in per_fire.items():
        view = definitions.get((group[0].job, group[0].gen)) or {}
        if view.get("type") == "ATMOST_ONCE" and len(group) > 1:
            report.add("ATMOST_ONCE calls > 1", f"{execution_id} called {len(group)} times")
        elif len(group) > 1:
            if execution_id in held:
                duplicates_after_kill += len(group) - 1
            else:
                report.add("duplicates not explained by a kill",
                           f"{execution_id} called {len(group)} times")
    report.info["duplicates after a kill (allowed)"] = duplicates_after_kill

    run_ats = defaultdict(set)
    for (job, _), view in definitions.items():
        if view.get("runAt"):
            run_ats[job].add(timing_of(view).run_at_ms)
    for job, job_calls in calls_of.items():
        for c in job_calls:
            if (definitions.get((job, c.gen)) or {}).get("schedule") == "@once" and \
                    c.execution_id not in manual and c.scheduled_ms not in run_ats[job]:
                report.add("one-time jobs called twice",
                           f"{c.execution_id}: not one of its instants {sorted(run_ats[job])}")
        forbid = sorted((c for c in job_calls if (definitions.get((job, c.gen)) or {})
                         .get("concurrency") == "forbid"), key=lambda c: c.arrived_ms)
        for before, after in zip(forbid, forbid[1:]):
            if before.execution_id != after.execution_id and \
                    after.arrived_ms < before.arrived_ms + before.sleep_ms - 5:
                report.add("overlapping calls (forbid)",
                           f"{after.execution_id} began while {before.execution_id} ran")

    recorded = {(row.execution_id, row.attempt) for row in rows}
    for call in calls:
        if call.arrived_ms < call.scheduled_ms:
            report.add("early calls", f"{call.execution_id} arrived "
                       f"{call.scheduled_ms - call.arrived_ms} ms early")
        if call.arrived_ms <= end_ms and (call.execution_id, call.attempt) not in recorded \
                and call.execution_id not in held:
            report.add("calls not recorded", f"{call.execution_id} attempt {call.attempt}")
    lags = [start(c) - op.answered_ms for job, history in by_job.items() for op in history
            if op.deleted for c in calls_of.get(job, []) if start(c) > op.answered_ms]
    report.info["latest call start after a delete answered (ms)"] = max(lags, default=0)
    report.info["calls"] = len(calls)
    report.info["operations"] = len(ops)
    return report


def _required_fires(report: Report, op: Op, next_invoked: int | None, end_ms: int,
                    ahead_ms: int, slack_ms: int, job_calls: list[Call],
                    skipped: dict[str, list[Row]], stopped_ms: int | None) -> None:
    """Fires of the definition this operation left that must be called (or,
    when a pause or delete invoked at ``stopped_ms`` caught them, skipped)."""
    view = op.view
    if op.deleted or view is None or op.kind not in DEFINING or state(view) != "active" \
            or view["type"] != "ATLEAST_ONCE" or view["concurrency"] != "allow":
        return
    until = end_ms if next_invoked is None else min(end_ms, next_invoked - slack_ms)
    called = {c.scheduled_ms for c in job_calls}
    for fire in fires(timing_of(view), op.answered_ms + ahead_ms + slack_ms, until):
        caught = stopped_ms is not None and any(
            row.started_ms >= stopped_ms and ("deleted" in row.error or "paused" in row.error)
            for row in skipped.get(f"{op.job}:{fire}", []))
        if fire not in called and not caught:
            report.add("ATLEAST_ONCE fires never called",
                       f"{op.job}:{fire} ({view['name']}, {fire - op.answered_ms} ms after "
                       f"{op.kind} answered, {until - fire} ms before the next operation)")
