"""The process that runs a distributed build: `python -m qa.distributed.child FD`.

It reads the request (one line of JSON) on standard input, which the parent keeps open while it
waits: when it closes, the parent is gone, and the build stops as on Ctrl-C. It writes one JSON
object a line to file descriptor FD: {"connected": true} once Ray is up, {"processes": [[pid,
start], ...]} of a local Ray, {"progress": [done, total]} as passages are embedded, then
{"done": summary} as soon as the new index is live, or {"error": {message, hint, exit_code}};
the first of them counts. If the cluster is lost, Ray may end this process without a word (a
dead GCS makes the driver exit after a few seconds): the parent sees the line stream end
without an answer, and reports it. Its standard output and error go to a log file that the
parent reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import traceback

from qa import config
from qa.errors import QAError


def main(argv: list[str]) -> int:
    out = os.fdopen(int(argv[0]), "w", buffering=1, encoding="utf-8")
    os.set_inheritable(out.fileno(), False)  # Ray's own processes must not hold the pipe open

    def send(**message) -> None:
        with contextlib.suppress(BrokenPipeError):  # the parent is gone: nobody to tell
            out.write(json.dumps(message) + "\n")

    request = json.loads(sys.stdin.readline())
    temp_dir = request["temp_dir"]
    orphaned = threading.Event()
    signal.signal(_ORPHANED, _interrupt)
    threading.Thread(target=_stop_with_parent, args=(orphaned,), daemon=True).start()
    logging.basicConfig(level=request.pop("log_level", logging.WARNING),
                        format="%(asctime)s qa: %(levelname)s: %(message)s")  # fmt: skip
    config.ensure_offline()
    from qa.distributed.driver import Request, run

    try:
        run(Request(**request), send)  # it sends the summary as soon as the index is live
    except QAError as exc:
        send(error={"message": exc.message, "hint": exc.hint, "exit_code": exc.exit_code})
    except KeyboardInterrupt:
        send(interrupted=True)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
        traceback.print_exc()
        send(crash={"type": type(exc).__name__, "message": str(exc)[:500]})
    with contextlib.suppress(BrokenPipeError):
        out.close()
    if orphaned.is_set():  # the parent would have removed it
        shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


# The signal that stops an orphaned build. Not SIGINT: a process started in the background
# inherits SIGINT ignored, and then a SIGINT sent to itself would do nothing (the build would
# finish and go live after `qa build` was killed).
_ORPHANED = getattr(signal, "SIGUSR1", signal.SIGINT)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop_with_parent(orphaned: threading.Event) -> None:
    """Stop the build (as Ctrl-C does) when the parent goes: it holds standard input open."""
    sys.stdin.read()
    orphaned.set()
    os.kill(os.getpid(), _ORPHANED)


if __name__ == "__main__":  # pragma: no cover - run by qa.distributed.build_index
    sys.exit(main(sys.argv[1:]))
