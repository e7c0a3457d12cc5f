"""``jobsched reshard --to M``: change the number of shards while the system
runs, with no fire lost or called twice.

1. Begin: Redis's layout becomes "N>M". Every process follows it within a
   heartbeat (common/shards.py) and serves the shards of both counts; each
   shard refuses writes routed by the old layout, so no process writes as
   if nothing changed.
2. Move: each job whose shard differs leaves its old shard's schedule in one
   script (move_out.lua) with its last claimed fire, and enters its new one
   (move_in.lua): its fires up to that instant are claimed in the old shard,
   later ones in the new, never one in both. A job whose fire is being
   rescheduled is moved on a later pass. Writes to a job go to its old shard
   first, which sends them on once it moved (publish_job.lua). Tombstones
   of deleted jobs go along.
3. Drain: the fires queued, retrying or in flight in an old shard are called
   from there, with the job's spec kept there (kept current by writes) until
   none is left.
4. End: failure streaks follow their jobs, every shard serves "M" alone (or
   is retired), the old shards drop the specs they kept.

Interrupted at any step, the command run again with the same count goes on
where it stopped.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from common.keys import Layout
from common.redis_reshard import ReshardShards
from common.shards import Shards
from common.timeutil import now_ms

log = logging.getLogger(__name__)

SCAN_PAGE = 1000
PASS_PAUSE_S = 0.05   # between passes over jobs busy being rescheduled
POLL_S = 0.2


class ReshardError(Exception):
    pass


class Reshard:
    def __init__(self, shards: ReshardShards, say: Callable[[str], None] = print,
                 follow_timeout_s: float = 30.0, move_timeout_s: float = 120.0,
                 drain_timeout_s: float = 600.0):
        self.shards = shards
        self.say = say
        self.follow_timeout_s = follow_timeout_s
        self.move_timeout_s = move_timeout_s
        self.drain_timeout_s = drain_timeout_s

    def run(self, to: int) -> Layout:
        """Reshard to ``to`` shards; returns the layout reached."""
        shards = self.shards
        shards.follow_layout()
        layout = shards.layout
        if layout.resharding and layout.to != to:
            raise ReshardError(f"a reshard from {layout.count} to {layout.to} shards is under "
                               f"way: finish it first (jobsched reshard --to {layout.to})")
        if not layout.resharding and layout.count == to:
            self._drop_leftover_mirrors()
            self.say(f"the schedule is in {to} shards already")
            return layout
        if layout.resharding:
            self.say(f"going on with the reshard from {layout.count} to {to} shards")
        else:
            self.say(f"resharding from {layout.count} to {to} shards")
        moving = shards.begin(to)
        self._wait_for_processes()
        moved = sum(self._move_out_of(shard, str(moving)) for shard in shards.old)
        self.say(f"moved {moved} jobs")
        self._move_tombstones()
        self._drain()
        self._end()
        self.say(f"the schedule is in {to} shards")
        return shards.layout

    def _drop_leftover_mirrors(self) -> None:
        """A run stopped after the layout ended but before the old shards
        dropped the specs they kept: drop them now (their fires drained
        before the layout ended)."""
        for shard in self.shards.ids:
            if self.shards[shard].moved_ids():
                self.shards[shard].drop_mirrors()
                self.say(f"dropped the specs shard {self.shards.label(shard)} kept of jobs "
                         "moved out")

    def _wait_for_processes(self) -> None:
        """Until each new shard has a leader and every worker beats there
        (else its fires would wait for them), or the timeout passes."""
        shards = self.shards
        added = [i for i in shards.new if i not in shards.old]
        if not added:
            return
        leaders = shards.dispatchers_alive(now_ms()) > 0   # (none running: none to wait for)
        workers = max(shards[i].workers_alive() for i in shards.old)
        deadline = time.monotonic() + self.follow_timeout_s
        while time.monotonic() < deadline:
            if all((shards[i].leader() or not leaders) and shards[i].workers_alive() >= workers
                   for i in added):
                return
            time.sleep(POLL_S)
        self.say(f"not every new shard had a leader and {workers} workers within "
                 f"{self.follow_timeout_s:.0f} s: moving anyway (their fires wait for them)")

    def _move_out_of(self, shard: int, layout: str) -> int:
        """Move every job of old ``shard`` whose new shard is another; the
        number moved."""
        shards, store = self.shards, self.shards[shard]
        moved, deadline = 0, time.monotonic() + self.move_timeout_s
        while True:
            busy, cursor = 0, 0
            while True:
                cursor, ids = store.scan_job_ids(cursor, SCAN_PAGE)
                leaving = [job_id for job_id in ids if shards.dest_of(job_id) != shard]
                if leaving:
                    done, waiting = self._move(store, layout, leaving)
                    moved, busy = moved + done, busy + waiting
                if cursor == 0:
                    break
            if not busy:
                return moved
            if time.monotonic() > deadline:
                raise ReshardError(f"{busy} jobs of shard {shards.label(shard)} stayed busy "
                                   f"for {self.move_timeout_s:.0f} s: run the command again")
            time.sleep(PASS_PAUSE_S)

    def _move(self, store, layout: str, job_ids: list[str]) -> tuple[int, int]:
        """Move these jobs out of ``store``; (moved now, busy)."""
        answers = store.move_out(layout, job_ids)
        if answers is None:
            raise ReshardError("the layout changed under the reshard (another reshard "
                               "command?): run the command again")
        by_dest: dict[int, list[tuple[str, str]]] = {}
        busy = 0
        for job_id, state in zip(job_ids, answers):
            if state == "busy":
                busy += 1
            elif state not in ("", "1"):
                by_dest.setdefault(self.shards.dest_of(job_id), []).append((job_id, state))
        for dest, moves in by_dest.items():
            self.shards[dest].move_in(moves)
            store.mark_installed([job_id for job_id, _ in moves])
        return sum(map(len, by_dest.values())), busy

    def _move_tombstones(self) -> None:
        """Deleted jobs stay deleted in their new shard (a late write of one
        finds its tombstone there once the old shard is gone)."""
        shards = self.shards
        for shard in shards.old:
            for dest, tombstones in _by_shard(shards, shards[shard].tombstones()).items():
                if dest != shard:
                    shards[dest].add_tombstones(tombstones)

    def _drain(self) -> None:
        shards = self.shards
        deadline, said = time.monotonic() + self.drain_timeout_s, 0.0
        while True:
            left = {shard: shards[shard].left_to_drain(retiring=shard not in shards.new)
                    for shard in shards.old}
            if not any(left.values()):
                return
            waiting = ", ".join(f"{count} in shard {shards.label(shard)}"
                                for shard, count in left.items() if count)
            if time.monotonic() > deadline:
                raise ReshardError(f"fires of moved jobs are still queued ({waiting}) after "
                                   f"{self.drain_timeout_s:.0f} s: run the command again "
                                   "later to finish")
            if time.monotonic() - said > 5:
                self.say(f"waiting for the fires queued before the move: {waiting}")
                said = time.monotonic()
            time.sleep(POLL_S)

    def _end(self) -> None:
        shards = self.shards
        old, new = shards.old, shards.new
        for shard in old:
            moved = shards[shard].moved_ids()
            for dest, streaks in _by_shard(shards, shards[shard].streaks(moved)).items():
                shards[dest].set_streaks(streaks)
        shards.end()
        for shard in old:
            if shard in new:
                shards[shard].drop_mirrors()
            else:
                shards[shard].retire()
        shards.follow_layout()


def _by_shard(shards: Shards, values: dict) -> dict[int, dict]:
    grouped: dict[int, dict] = {}
    for job_id, value in values.items():
        grouped.setdefault(shards.dest_of(job_id), {})[job_id] = value
    return grouped
