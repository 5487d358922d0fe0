"""Ray for one build: a private local Ray, or a cluster joined, quietly, leaving nothing behind.

`connect(None, ...)` starts Ray on this machine for the block and stops it afterwards: every
process it started (GCS, raylet, agents, workers) is gone when the block ends, even those that
outlive `ray.shutdown()` (they are killed). `connect("auto" | "host:port" | "ray://host:10001")`
joins a running cluster and only disconnects. Ray is imported here, never at `qa` start-up.

The settings in `ENV` are set before `ray.init` (Ray's own servers read them when they start):
no usage statistics, no token file in ~/.ray (token auth must be the same on the driver and the
cluster: start a cluster with `RAY_AUTH_MODE=disabled` too), and a lost cluster noticed in about
5 seconds instead of 15-60 (measured on the 2-core machine; docs/scaling.md, "Builds on a Ray
cluster").

Processes are found through /proc (Linux; elsewhere nothing is tracked and Ray's own shutdown
is all there is).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_health_check_period_ms": "1000",  # a dead raylet is noticed after 3 missed checks
    "RAY_health_check_failure_threshold": "3",
    "RAY_gcs_rpc_server_reconnect_timeout_s": "5",  # a dead GCS ends the driver after 5 s
}
OBJECT_STORE_BYTES = 512 * 2**20  # a local Ray's shared memory (Ray spills to disk beyond it)
CONNECT_HINT = ("start a cluster with `ray start --head`, give its address (auto, host:6379 or "
                "ray://host:10001), or leave out the address to run Ray on this machine")
GRACE_S = 10.0  # how long processes may take to exit after shutdown before they are killed

Process = tuple[int, int]  # (pid, start time): a pid alone may have been reused


def set_env() -> None:
    """The settings of `ENV`, unless the environment already has them."""
    for key, value in ENV.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def connect(
    address: str | None,
    temp_dir: str | None = None,
    num_cpus: int | None = None,
    on_processes: Callable[[list[Process]], None] | None = None,
    on_connected: Callable[[], None] | None = None,
) -> Iterator[object]:
    """Ray for the block: a private local Ray (`address` None), or the cluster at `address`.

    Args:
        address: None to start Ray on this machine; else what `ray.init` takes ("auto",
            "host:port", "ray://host:10001").
        temp_dir: where a local Ray keeps its session files (short: Ray's socket paths must
            fit in 107 bytes); removed by the caller.
        num_cpus: CPUs of a local Ray (default: all of this machine's).
        on_processes: told the processes a local Ray started, once it is up (so that a
            watcher can remove them if this process dies without cleaning up).
        on_connected: called once Ray is up.

    Yields:
        the `ray` module, initialised.

    Raises:
        QAError: the cluster cannot be reached.
    """
    set_env()
    import ray

    from qa.errors import QAError

    options = {"log_to_driver": False, "configure_logging": True, "logging_level": "ERROR"}
    # this process's children from before: never Ray's (a caller's browser, server or shell)
    existing = set(processes(os.getpid())) if address is None else set()
    try:
        if address is None:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     object_store_memory=OBJECT_STORE_BYTES,
                     **({"_temp_dir": temp_dir} if temp_dir else {}), **options)  # fmt: skip
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        ray.shutdown()
        where = "a local Ray" if address is None else f"the Ray cluster at {address}"
        raise QAError(
            f"cannot start {where}: {first_line(exc)}" if address is None
            else f"cannot reach {where}: {first_line(exc)}",
            CONNECT_HINT,
        ) from None
    if on_connected is not None:
        on_connected()
    started = [p for p in processes(os.getpid()) if p not in existing] if address is None else []
    if on_processes is not None and started:
        on_processes(started)
    try:
        yield ray
    finally:
        if address is None:
            started += descendants(started)
        try:
            ray.shutdown()
        finally:
            if address is None:
                started += descendants(started)
                stop(started)


def first_line(exc: BaseException) -> str:
    """An exception's message on one line, at most 200 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text[:200]


def descendants(started: list[Process]) -> list[Process]:
    """The live descendants of `started` that it does not list yet (the workers a raylet
    started since); a process that was there before Ray is never among them."""
    known, found = set(started), []
    for pid, _ in started:
        for process in processes(pid):
            if process not in known:
                known.add(process)
                found.append(process)
    return found


def processes(root: int) -> list[Process]:
    """Every live descendant of process `root`, with its start time."""
    children: dict[int, list[int]] = {}
    for entry in _proc_entries():
        stat = _stat(entry)
        if stat is not None:
            children.setdefault(int(stat[1]), []).append(entry)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            start = start_time(child)
            if start is not None:
                found.append((child, start))
            todo.append(child)
    return found


def stop(started: list[Process], grace_s: float = GRACE_S) -> list[int]:
    """Wait up to `grace_s` for these processes to exit, then kill those still running.

    Returns:
        the pids that had to be killed.
    """
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in started):
        time.sleep(0.1)
    killed = []
    for process in started:
        if alive(process):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process[0], signal.SIGKILL)
                killed.append(process[0])
    if killed:
        log.debug("killed Ray processes that outlived the shutdown: %s", killed)
    return killed


def alive(process: Process) -> bool:
    """Whether this very process (same pid, same start time) is still running."""
    stat = _stat(process[0])
    return stat is not None and stat[0] != "Z" and int(stat[19]) == process[1]


def start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), or None when it is gone."""
    stat = _stat(pid)
    return None if stat is None else int(stat[19])


def _proc_entries() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # no /proc: nothing to track
        return []


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...], or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    return fields if len(fields) > 19 else None
