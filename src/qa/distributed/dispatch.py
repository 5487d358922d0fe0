"""Feed Ray workers a bounded number of calls at a time and hand the results back in order.

Plain actors and `ray.wait`, not Ray Data: measured on the 2-core machine, Ray Data cost 4-6 s
per run before the first batch and needs the whole input in the driver, while this loop reads
its input lazily and holds a fixed number of results (docs/scaling.md, "Builds on a Ray cluster").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from qa.errors import QAError

T = TypeVar("T")

PER_WORKER = 2  # calls queued on each worker: it starts the next one while its result travels
HELD_PER_WORKER = 4  # items held per worker at most: running, or done and waiting their turn


class Dispatcher:
    """Runs calls on Ray actors, least busy first, and yields results in the order of the input.

    At most `PER_WORKER` calls run or wait on each worker, and at most `HELD_PER_WORKER` x
    workers items are held: running, or done (with or without a call) and waiting for an
    earlier slow one; so the driver holds a fixed number of inputs and results, however long
    the input.

    Args:
        workers: Ray actor handles.
        timeout_s: how long to wait for any call to finish before giving up (a stuck worker
            must not hang the build).
    """

    def __init__(self, workers: list, timeout_s: float) -> None:
        self.workers, self.timeout_s = workers, timeout_s
        self.held_limit = HELD_PER_WORKER * len(workers)

    def map(self, items: Iterable[T], call: Callable[[Any, T], Any]) -> Iterator[tuple[T, Any]]:
        """Yield (item, result) for each item, in order.

        Args:
            items: read one at a time, only when a worker can take the call.
            call: call(worker, item) starts the work with `.remote(...)` and returns its
                ObjectRef; or a list of ObjectRefs, of which the first is waited for and the
                result is [its value, *the other refs]; or None when the item needs no work
                (its result is None).
        """
        run = _Run(self)
        for item in items:
            while run.queue and (min(run.load) >= PER_WORKER or len(run.queue) >= self.held_limit):
                run.wait()
                yield from run.ready()
            worker = run.load.index(min(run.load))
            run.add(item, call(self.workers[worker], item), worker)
            yield from run.ready()
        while run.queue:
            run.wait()
            yield from run.ready()


class _Run:
    """The state of one `Dispatcher.map`."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.timeout_s = dispatcher.timeout_s
        self.queue: deque = deque()  # [item, ref or None, the other refs], in input order
        self.load = [0] * len(dispatcher.workers)  # unfinished calls per worker
        self.busy: dict = {}  # unfinished ref -> worker
        self.results: dict = {}  # finished ref -> value, until its turn

    def add(self, item, refs, worker: int) -> None:
        rest = []
        if isinstance(refs, list):
            refs, rest = refs[0], refs[1:]
        if refs is not None:
            self.busy[refs] = worker
            self.load[worker] += 1
        self.queue.append((item, refs, rest))

    def wait(self) -> None:
        """Wait for one call to finish (or the first item to be ready)."""
        import ray

        if not self.busy or self._head_ready():
            return
        done, _ = ray.wait(list(self.busy), num_returns=1, timeout=self.timeout_s)
        if not done:
            raise QAError(
                f"no Ray worker finished its work within {self.timeout_s:.0f} s",
                "check the cluster (`ray status`); the previous index is still live",
            )
        for ref in done:
            self.load[self.busy.pop(ref)] -= 1
            self.results[ref] = ray.get(ref)

    def _head_ready(self) -> bool:
        return bool(self.queue) and (self.queue[0][1] is None or self.queue[0][1] in self.results)

    def ready(self) -> Iterator[tuple]:
        """The items at the head of the queue whose results are in."""
        while self._head_ready():
            item, ref, rest = self.queue.popleft()
            if ref is None:
                yield item, None
                continue
            value = self.results.pop(ref)
            yield item, [value, *rest] if rest else value
