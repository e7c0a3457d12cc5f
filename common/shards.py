"""The schedule split into shards (JOBSCHED_SHARDS): one gateway of a role
per shard, each over its own hash-tagged keys (common/keys.py), and what
spans them: routing a job to its shard, the keys all shards share, and the
layout every process follows.

The layout lives in Redis (the shared ``shards`` key), so that ``jobsched
reshard`` can change it while the system runs: each process follows it (the
dispatcher each second, a worker as often as it beats, the API when a write
is refused as routed by an older layout). While a reshard runs, a process
serves the shards of both counts; a job's writes go first to its shard in
the old count, which sends them on once the job has moved
(common/lua/publish_job.lua).

Each role's shards (ApiShards, DispatcherShards, WorkerShards) add what that
role does across shards. With one shard every call goes to the one gateway,
over the keys jobsched always had.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Generic, Iterator, TypeVar

import redis
from redis.cluster import RedisCluster

from common.keys import Keys, Layout, shard_keys, shard_of
from common.redisstore import RedisError, RedisStore

log = logging.getLogger(__name__)

S = TypeVar("S", bound=RedisStore)

# A write refused as routed by an older layout follows the new one; a
# layout that keeps changing under one write is an error.
LAYOUT_TRIES = 5


RELAYOUT = object()   # a routed write's answer: refused, route it again


class LayoutChanging(RedisError):
    """The shard layout changed under a write more than LAYOUT_TRIES times."""


@dataclass(frozen=True)
class _View:
    layout: Layout
    old: list[int]                       # ids of the old count's shards, in order
    new: list[int]                       # ids of the final count's shards
    ids: list[int]                       # every shard served now
    numbers: dict[int, tuple[int, bool]]  # id -> (number, retiring)


_NO_VIEW = _View(Layout(1), [], [], [], {})


class Shards(Generic[S]):
    """The shards of one layout, each by an id fixed for this process's life
    (a message or lease held names its shard by id, across a reshard)."""

    role: type[RedisStore] = RedisStore

    def __init__(self, stores: list[S], layout: Layout | None = None):
        self.client = stores[0].client
        self.prefix = stores[0].keys.shared
        # The shared keys (metrics, alerts, the layout) are named alike in
        # every shard's Keys: the first gateway serves them.
        self.shared = stores[0]
        self.stores: list[S] = []            # by id; never shrinks
        self._ids: dict[str, int] = {}       # key prefix -> id
        # Threads may follow a new layout at once (the API's request threads):
        # one at a time gives ids, or two shards would get the same one.
        self._adopting = threading.Lock()
        for store in stores:
            self._ids[store.keys.prefix] = len(self.stores)
            self.stores.append(store)
        self._adopt(layout or Layout(len(stores)))

    @classmethod
    def open(cls, client: redis.Redis, prefix: str, count: int = 1):
        return cls([cls.role(client, keys) for keys in shard_keys(prefix, count)])

    def _id_of(self, keys: Keys) -> int:
        if keys.prefix not in self._ids:
            self._ids[keys.prefix] = len(self.stores)
            self.stores.append(self.role(self.client, keys))
        return self._ids[keys.prefix]

    def _adopt(self, layout: Layout) -> None:
        with self._adopting:
            self._adopt_locked(layout)

    def _adopt_locked(self, layout: Layout) -> None:
        old = [self._id_of(k) for k in shard_keys(self.prefix, layout.count)]
        new = [self._id_of(k) for k in shard_keys(self.prefix, layout.final)]
        # (Shards no longer served keep their number, for the logs.)
        numbers = {i: (n, True) for i, (n, _) in getattr(self, "_view", _NO_VIEW).numbers.items()}
        numbers.update({i: (n, i not in new) for n, i in enumerate(old)})
        numbers.update({i: (n, False) for n, i in enumerate(new)})
        # One object, replaced whole: other threads route by it meanwhile.
        self._view = _View(layout, old, new, old + [i for i in new if i not in old], numbers)

    @property
    def layout(self) -> Layout:
        return self._view.layout

    @property
    def ids(self) -> list[int]:
        """The shards served now, by id (while resharding, of both counts)."""
        return self._view.ids

    @property
    def old(self) -> list[int]:
        """The ids of the shards of the (old) count, in shard order."""
        return self._view.old

    @property
    def new(self) -> list[int]:
        """The ids of the shards of the count once any reshard is done."""
        return self._view.new

    def route(self, job_id: str) -> tuple[str, int, int]:
        """The layout, the job's shard (while resharding, in the old count:
        its writes go there first, its reconciling and running marks stay
        there) and its shard once any reshard under way is done."""
        view = self._view
        return (str(view.layout), view.old[shard_of(job_id, view.layout.count)],
                view.new[shard_of(job_id, view.layout.final)])

    @property
    def count(self) -> int:
        """Shards served now (while resharding, of both counts)."""
        return len(self.ids)

    @property
    def keys(self) -> Keys:
        return self.shared.keys

    @property
    def one_node(self) -> bool:
        """Multi-key commands may span shards (not on a Redis Cluster)."""
        return not isinstance(self.client, RedisCluster)

    def __getitem__(self, shard: int) -> S:
        return self.stores[shard]

    def __iter__(self) -> Iterator[S]:
        return iter([self.stores[i] for i in self.ids])

    def number(self, shard: int) -> tuple[int, bool]:
        """The shard's number in its layout, and whether a reshard under
        way retires it."""
        return self._view.numbers[shard]

    def label(self, shard: int) -> str:
        """The shard's number ("2-old": one a reshard under way retires)."""
        number, retiring = self.number(shard)
        return f"{number}-old" if retiring else str(number)

    def index_of(self, job_id: str) -> int:
        return self.route(job_id)[1]

    def dest_of(self, job_id: str) -> int:
        return self.route(job_id)[2]

    def for_job(self, job_id: str) -> S:
        return self.stores[self.index_of(job_id)]

    def each(self, action) -> list:
        """``action(store)`` in every shard, in order: a shard that cannot be
        reached does not keep the others from it (its RedisError is raised
        once all were tried). Returns what each returned (None if failed)."""
        results, failure = [], None
        for store in self:
            try:
                results.append(action(store))
            except RedisError as e:
                results.append(None)
                failure = failure or e
        if failure:
            raise failure
        return results

    def per_job(self, items: list, job_of, call) -> list:
        """``call(store, its items)`` in each shard holding some of ``items``
        (by their job), the answers put back in the order of ``items``."""
        positions: dict[int, list[int]] = {}
        for position, item in enumerate(items):
            positions.setdefault(self.index_of(job_of(item)), []).append(position)
        answers: list = [None] * len(items)
        for shard, group in positions.items():
            for position, answer in zip(group, call(self[shard], [items[p] for p in group])):
                answers[position] = answer
        return answers

    def follow_layout(self) -> bool:
        """Take the layout Redis holds (recording this one if it holds none);
        whether it changed. Threads read and adopt one at a time: one that
        read an older layout never adopts it after another's newer one."""
        key = self.keys.shard_count
        with self._adopting:
            self.client.set(key, str(self.layout), nx=True)
            stored = Layout.parse(self.client.get(key) or str(self.layout))
            if stored == self.layout:
                return False
            log.warning("the shard layout is %s now (was %s)", stored, self.layout)
            self._adopt_locked(stored)
            return True

    def relayout(self, attempt: int) -> None:
        """A write was refused as routed by another layout than its shard
        serves: follow the layout Redis holds (if it is the one known, the
        reshard is changing it in the shards this moment: wait a little)."""
        if not self.follow_layout():
            time.sleep(0.02 * (attempt + 1))

    def routed(self, job_id: str, write):
        """``write(layout, home, dest)`` (see route) until it does not answer
        RELAYOUT, following the layout Redis holds after each refusal."""
        for attempt in range(LAYOUT_TRIES):
            done = write(*self.route(job_id))
            if done is not RELAYOUT:
                return done
            self.relayout(attempt)
        raise LayoutChanging(f"the shard layout kept changing while writing job {job_id}")

    # What every role does, routed to the job's shard (common/publish.py).
    def publish_job(self, job_id: str, *args) -> tuple[str, int | None]:
        """RedisStore.publish_job in the job's shard. While resharding, in
        its old shard, which sends the write on to the new one once the job
        has moved there (moving it first if the move is not finished)."""
        def write(layout, home, dest):
            outcome, found = self[home].publish_job(job_id, *args, layout=layout,
                                                    redirect=home != dest)
            if outcome == "moved":
                if found:
                    self[dest].move_in([(job_id, found)])
                outcome, found = self[dest].publish_job(job_id, *args, layout=layout)
            return RELAYOUT if outcome == "relayout" else (outcome, found)
        return self.routed(job_id, write)

    def remove_job(self, job_id: str, now_ms: int) -> None:
        """Tombstone the job in its shard (while resharding, in both: the
        fires queued in the old one before it moved are skipped too)."""
        def write(layout, home, dest):
            done = self[home].remove_job(job_id, now_ms, layout)
            if done and home != dest:
                done = self[dest].remove_job(job_id, now_ms, layout)
            return None if done else RELAYOUT
        self.routed(job_id, write)

    def ping(self) -> bool:
        return self.shared.ping()

    def add_metrics(self, recorder) -> None:
        self.shared.add_metrics(recorder)
