"""Per-stage time limits (``stages.<stage>.timeout_s`` in pipelines.yaml).

Dagster has no per-op timeout (``dagster/max_runtime`` limits a whole run), so:

- the model fit (the train stage's long part) runs in a child process that is terminated when the
  limit passes; the step fails with ``StageTimeoutError`` and nothing downstream runs;
- every other stage's step runs under a ``SIGALRM`` timer in the step's process: Python code is
  interrupted with ``StageTimeoutError`` when the limit passes.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ml_platform.errors import MlPlatformError


class StageTimeoutError(MlPlatformError, TimeoutError):
    """A stage ran longer than its ``timeout_s``."""


def _message(pipeline_name: str, stage: str, seconds: float, what: str) -> str:
    return (
        f"{what} of pipeline {pipeline_name!r} ran longer than its limit of {seconds:g} s"
        f" (stages.{stage}.timeout_s in the pipelines file) and was stopped"
    )


@contextmanager
def stage_timeout(context: Any, pipeline: Any, stage: str) -> Iterator[None]:
    """Interrupt the block with StageTimeoutError after ``stages.<stage>.timeout_s`` seconds."""
    seconds = pipeline.timeout_s(stage)
    if not seconds:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        # Signals reach only the main thread; every Dagster executor runs steps there.
        context.log.warning(f"stages.{stage}.timeout_s is not enforced: the step is not in the main thread")
        yield
        return

    message = _message(pipeline.name, stage, seconds, f"the {stage} stage")
    fired: list[bool] = []

    def on_alarm(signum: int, frame: Any) -> None:
        fired.append(True)
        raise StageTimeoutError(message)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if fired:
        # The interruption landed where Python cannot pass it on (a garbage collector's callback
        # prints such an error and goes on): the limit passed all the same.
        raise StageTimeoutError(message)


def _child_fit(conn: Any, fit: Callable[..., Any], args: tuple) -> None:
    """In the child: run ``fit(*args, report)``; send progress, then the result or the error."""
    try:

        def report(done: int, total: int) -> None:
            conn.send(("progress", done, total))

        conn.send(("done", fit(*args, report)))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
        try:
            conn.send(("error", exc, traceback.format_exc()))
        except Exception:  # noqa: BLE001 - the exception itself does not pickle (any of several errors)
            conn.send(("error", None, traceback.format_exc()))
    finally:
        conn.close()


def _progress_or_raise(message: tuple, report: Callable[[int, int], None]) -> None:
    """A message of the child other than its result: progress is reported, an error raised."""
    if message[0] == "progress":
        report(message[1], message[2])
        return
    _, exc, text = message
    if isinstance(exc, BaseException):
        raise exc
    raise MlPlatformError(f"the model fit failed in its process:\n{text}")


def run_with_timeout(
    fit: Callable[..., Any],
    args: tuple,
    seconds: float,
    report: Callable[[int, int], None],
    describe: tuple[str, str],
) -> Any:
    """``fit(*args, report)`` in a fresh child process (spawn: no state inherited from the step's
    process, OpenMP included), terminated after ``seconds``. Returns what ``fit`` returns; raises
    what it raised, or StageTimeoutError. ``describe`` = (pipeline name, stage)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child_fit, args=(child, fit, args), daemon=True)
    deadline = time.monotonic() + seconds
    process.start()
    child.close()
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StageTimeoutError(_message(describe[0], describe[1], seconds, "the model fit"))
            if not parent.poll(min(remaining, 1.0)):
                if not process.is_alive() and not parent.poll(0):
                    raise MlPlatformError(f"the model fit process died (exit code {process.exitcode})")
                continue
            try:
                message = parent.recv()
            except EOFError:
                process.join(5)
                raise MlPlatformError(f"the model fit process died (exit code {process.exitcode})") from None
            if message[0] == "done":
                return message[1]
            _progress_or_raise(message, report)
    finally:
        if process.is_alive():
            process.terminate()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
        parent.close()
