"""Every file is read in a child process, with a memory limit and a time limit.

One mechanism bounds every loader, whatever the file: an HTML page of a million unclosed tags,
a PDF whose pages all share one huge content stream, a zip bomb, an image that decodes to
gigabytes, a scan of 500 pages. The reading process is a child of the build (or of the page):

* memory: its address space is capped (`setrlimit(RLIMIT_AS)`, $QA_PARSE_MB, default
  2,000 MB); an allocation past it fails (MemoryError, or a crash of a C library), the file is
  refused with that reason, and a fresh child reads the next file;
* time: the parent waits for the child's answer until a deadline, then kills the child's
  process group (OCR included): a file may take $QA_PARSE_SECONDS (default 60 s); each page
  recognised by OCR restarts the clock, so a long scan is read page by page with progress,
  never cut for its length.

The child is started once (`python -c "...; serve(MB)"`) and reads file after file
until it is stopped, is killed, or has grown past half its limit. It runs in a session of its
own, so a Ctrl-C at the terminal reaches the build only, which kills it; it also dies with its
parent (Linux: PR_SET_PDEATHSIG), so a killed build leaves no reader running.

Messages on the pipes are pickles, each after its length: the request (path, bytes); from the
child, ("page", done, total) as OCR goes on, ("log", logger, level, message) for a loader's
warning (logged by the parent), then ("done", Document, retire) or
("refused", reason, retire); retire: the child exits after it, to give its memory back.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qa import config
from qa.ingest.loaders.base import Document

log = logging.getLogger(__name__)

OnPage = Callable[[int, int], None]  # (pages recognised, pages to recognise) of the file
_HEADER = struct.Struct(">Q")
KEEP_IDLE = 2  # idle readers kept for the next file (the page may read uploads of two sessions)


@dataclass(frozen=True)
class Limits:
    """What reading one file may take.

    Attributes:
        seconds: wall-clock seconds, restarted by each page recognised (OCR).
        megabytes: the reading process's address space.
    """

    seconds: float
    megabytes: int

    @classmethod
    def configured(cls) -> Limits:
        """$QA_PARSE_SECONDS and $QA_PARSE_MB, or their defaults.

        Raises:
            ValueError: a value that is not a positive number.
        """
        return cls(config.parse_seconds(), config.parse_megabytes())


def parse(rel: str, data: bytes, on_page: OnPage | None = None,
          limits: Limits | None = None) -> Document:  # fmt: skip
    """The `Document` of a file's bytes, read in a child process within `limits`.

    Args:
        rel: the file's path (its suffix picks the loader).
        data: its bytes.
        on_page: called with (done, total) as pages are recognised.
        limits: default `Limits.configured()`.

    Raises:
        ValueError: the file cannot be read; the reason says why (the loader's reason, or the
            limit it went past).
    """
    limits = limits or Limits.configured()
    reader = _take(limits.megabytes)
    try:
        return reader.parse(rel, data, limits.seconds, on_page)
    finally:  # (a Ctrl-C, or a callback's error, stops a reader in the middle of a file)
        if reader.alive and not reader.busy:
            _give_back(reader)
        else:
            reader.stop()


_idle: list[_Reader] = []
_lock = threading.Lock()
atexit.register(lambda: stop_idle())


def _take(megabytes: int) -> _Reader:
    """An idle reader with this limit, started by this thread (Linux kills a child when the
    thread that started it ends: a page's script thread), or a new one."""
    with _lock:
        gone = [reader for reader in _idle if reader.process.poll() is not None]
        _idle[:] = [reader for reader in _idle if reader not in gone]
        mine = [reader for reader in _idle
                if reader.megabytes == megabytes and reader.thread == threading.get_ident()]
        if mine:
            _idle.remove(mine[0])
    for reader in gone:
        reader.stop()
    return mine[0] if mine else _Reader(megabytes)


def _give_back(reader: _Reader) -> None:
    with _lock:
        if len(_idle) < KEEP_IDLE:
            _idle.append(reader)
            return
    reader.stop()


def stop_idle() -> None:
    """Stop the idle readers (they also stop when this process ends)."""
    with _lock:
        readers, _idle[:] = list(_idle), []
    for reader in readers:
        reader.stop()


class _Reader:
    """One child process that reads files (see the module text)."""

    def __init__(self, megabytes: int) -> None:
        self.megabytes = megabytes
        self.thread = threading.get_ident()
        self.alive = True
        source = str(Path(__file__).resolve().parents[3])  # the folder that holds `qa`
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": source + (os.pathsep + path if path else ""),
               "OMP_THREAD_LIMIT": "1", "OPENBLAS_NUM_THREADS": "1"}  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import serve; serve({int(megabytes)})"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None if config.debug() else subprocess.DEVNULL,
            start_new_session=True, env=env,
        )  # fmt: skip
        self.timed_out = False
        self.busy = False  # a file was handed over and its answer has not come back
        self.received = bytearray()  # what the child wrote that is not read yet

    def parse(self, rel: str, data: bytes, seconds: float, on_page: OnPage | None) -> Document:
        """Read one file (see `parse`)."""
        self.busy = True
        deadline = time.monotonic() + seconds
        self._write(_frame((rel, data)), deadline)
        while True:
            message = self._next(deadline)
            if message is None:
                self.alive = False
                raise ValueError(self._why_stopped(seconds))
            if message[0] == "log":  # a loader's warning, said here as it was there
                logging.getLogger(message[1]).log(message[2], "%s", message[3])
                continue
            if message[0] == "page":
                deadline = time.monotonic() + seconds  # each page recognised: the clock again
                if on_page is not None and message[2]:
                    on_page(message[1], message[2])
                continue
            self.busy = False
            self.alive = self.alive and not message[2]
            if message[0] == "refused":
                raise ValueError(message[1])
            return message[1]

    def _write(self, payload: bytes, deadline: float) -> None:
        """Hand `payload` to the child, giving up at `deadline` (the child is then killed)."""
        fd = self.process.stdin.fileno()
        os.set_blocking(fd, False)
        view = memoryview(payload)
        while view:
            if not select.select([], [fd], [], max(0.0, deadline - time.monotonic()))[1]:
                self.timed_out = True
                self._kill()
                return
            try:
                view = view[os.write(fd, view[:65536]):]
            except BlockingIOError:
                continue
            except OSError:  # it died before it read the request: the answer says why
                return

    def _next(self, deadline: float) -> tuple | None:
        """The child's next message; None when it ended, or when `deadline` passed (the child
        is then killed)."""
        header = self._read(_HEADER.size, deadline)
        if header is None:
            return None
        payload = self._read(_HEADER.unpack(header)[0], deadline)
        return None if payload is None else pickle.loads(payload)  # noqa: S301 - our child's

    def _read(self, size: int, deadline: float) -> bytes | None:
        fd = self.process.stdout.fileno()
        while len(self.received) < size:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                self.timed_out = True
                self._kill()
                return None
            chunk = os.read(fd, max(65536, size - len(self.received)))
            if not chunk:
                return None
            self.received += chunk
        data = bytes(self.received[:size])
        del self.received[:size]
        return data

    def _kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _why_stopped(self, seconds: float) -> str:
        """Why the child ended before it answered: the deadline, a crash, or an error."""
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # (it closed its output, yet runs on)
            self._kill()
            code = self.process.wait()
        if self.timed_out:
            return (f"took longer than {seconds:g} s to read (the limit per file, and per page "
                    "recognised, set by QA_PARSE_SECONDS)")  # fmt: skip
        if code == OUT_OF_MEMORY:
            return memory_reason(self.megabytes)
        if code > 0:  # Python itself failed (it could not start, or died on an error)
            return (f"the reader failed (exit status {code}; QA_DEBUG=1 shows its error "
                    "output)")  # fmt: skip
        try:
            how = signal.Signals(-code).name
        except ValueError:
            how = f"signal {-code}"
        return (f"the reader stopped ({how}), most likely out of memory: reading a file may "
                f"take {self.megabytes:,} MB (QA_PARSE_MB)")  # fmt: skip

    def stop(self) -> None:
        """Kill the child and everything it started (OCR), and reap it."""
        self.alive = False
        self._kill()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.process.wait()


def _frame(message: object) -> bytes:
    """A message as it goes down a pipe: its length, then its pickle."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


def _send(stream, message: object) -> None:
    stream.write(_frame(message))
    stream.flush()


def _receive(stream) -> object | None:
    """The next message (the child reads its requests so), or None at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    return pickle.loads(stream.read(_HEADER.unpack(header)[0]))  # noqa: S301 - the parent's


# --- the child ---------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (elsewhere: nothing)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _memory_in_use() -> int:
    """This process's address space in bytes (0 where /proc cannot tell)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


OUT_OF_MEMORY = 86  # the child's exit status when memory ran out where it could not answer


def memory_reason(megabytes: int) -> str:
    """The reason a file that needs more memory than the limit is refused."""
    return f"needs more memory than the {megabytes:,} MB a file may take (QA_PARSE_MB)"


def serve(megabytes: int) -> None:
    """The child's loop: read requests from stdin, answer on stdout, until stdin ends (or
    memory ran out: then it answers, or exits with `OUT_OF_MEMORY`)."""
    import resource

    limit = megabytes * 1_000_000
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it kills this process
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print never corrupts the answers
    try:
        _serve(requests, answers, limit, ("refused", memory_reason(megabytes), True))
    except MemoryError:  # (handling one, say: the file's tree is held until the handler ends)
        os._exit(OUT_OF_MEMORY)


class _Forward(logging.Handler):
    """Hands qa's log records (a loader's warning) to the parent, to be logged there."""

    def __init__(self, answers) -> None:
        super().__init__(logging.INFO)
        self.answers = answers

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _send(self.answers, ("log", record.name, record.levelno, record.getMessage()))
        except Exception:  # noqa: BLE001 - a log line is never worth a file
            pass


def _serve(requests, answers, limit: int, out_of_memory: tuple) -> None:
    from qa.ingest.loaders import ocr
    from qa.ingest.loaders.formats import parse_bytes

    qa_log = logging.getLogger("qa")
    qa_log.addHandler(_Forward(answers))
    qa_log.setLevel(logging.INFO)
    qa_log.propagate = False

    while (request := _receive(requests)) is not None:
        rel, data = request
        ocr.progress = lambda done, total: _send(answers, ("page", done, total))
        answer: tuple | None = None
        try:
            answer = ("done", parse_bytes(rel, data), False)
        except ValueError as exc:
            answer = ("refused", str(exc), False)
        except MemoryError:
            pass  # answered below, once the file's objects are freed (allocating nothing here)
        except Exception as exc:  # noqa: BLE001 - a library's error on a damaged file
            answer = ("refused", f"unreadable ({exc.__class__.__name__})", False)
        del request, data
        if answer is None:
            answer = out_of_memory
        elif _memory_in_use() > limit // 2:
            answer = (*answer[:2], True)
        _send(answers, answer)
        if answer[2]:  # retire: exit, and give the memory back
            return
