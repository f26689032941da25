"""CPU per request of the edge's bookkeeping: the access line and the request metrics.

    python -m bench.edgecost

* the access line as RequestObserver writes it when Dompet's log writer is its only handler:
  what the event loop pays (queueing a tuple) and what the writer thread pays (scrub, format,
  write to /dev/null), per line;
* the same line logged as a record (``logging`` with ``extra``; the path taken when another
  handler is on the way), event loop and writer thread;
* the request's metric calls (a counter, a histogram, the money counters), in memory (one
  process) and in prometheus-client's multiprocess mode (``dompet serve --workers N``).

Best of five rounds of process CPU time; the writer's thread is stopped and drained by hand.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

LINES = 20_000


def best(one: Callable[[], None], n: int) -> float:
    """µs of process CPU per call, best of five rounds of ``n`` calls."""
    found = float("inf")
    for _ in range(5):
        cpu = time.process_time()
        for _ in range(n):
            one()
        found = min(found, time.process_time() - cpu)
    return found / n * 1e6


def access_line() -> None:
    from dompet.observability.log_writer import LogWriter
    from dompet.observability.logging import (
        ACCESS_LOGGER,
        access_line_writer,
        configure_logging,
        request_id,
    )

    with open(os.devnull, "w") as devnull:
        sys.stderr = devnull
        try:
            configure_logging("INFO", True, ZoneInfo("Asia/Jakarta"))
            writer = logging.getLogger().handlers[0]
            assert isinstance(writer, LogWriter)
            writer._stopped.set()  # drained below, by hand, to time the two sides apart
            writer._thread.join()
            writer._stopped.clear()
            log = logging.getLogger(ACCESS_LOGGER)
            rid = "8876888c0250f4c00000000000000002"
            request_id.set(rid)

            def fast() -> None:
                write = access_line_writer(log)
                assert write is not None
                write("POST", "/pay", 200, 0.00123, rid)

            extra = {"method": "POST", "route": "/pay", "status": 200, "duration_ms": 1.23}

            def record() -> None:
                log.info("%s %s %s", "POST", "/pay", 200, extra=extra)

            for name, one in (("as a tuple (RequestObserver)", fast), ("as a record", record)):
                loop = thread = float("inf")
                for _ in range(5):
                    cpu = time.process_time()
                    for _ in range(LINES):
                        one()
                    loop = min(loop, time.process_time() - cpu)
                    cpu = time.process_time()
                    writer._drain()
                    thread = min(thread, time.process_time() - cpu)
                print(
                    f"access line {name}: {loop / LINES * 1e6:.1f} us on the event loop, "
                    f"{thread / LINES * 1e6:.1f} us in the writer thread",
                    flush=True,
                )
        finally:
            sys.stderr = sys.__stderr__


def metrics() -> None:
    """Runs itself in two fresh processes: prometheus-client picks its mode at import."""
    for mode in ("memory", "multiprocess"):
        env = dict(os.environ)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with tempfile.TemporaryDirectory(prefix="dompet-edgecost-") as directory:
            if mode == "multiprocess":
                env["PROMETHEUS_MULTIPROC_DIR"] = directory
            subprocess.run(
                [sys.executable, "-m", "bench.edgecost", "--metrics"], env=env, check=True
            )


def metrics_here() -> None:
    from dompet.observability.metrics import Metrics

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    recorder = Metrics(directory)

    def one() -> None:
        recorder.observe_request("POST", "/pay", 200, 0.0042)
        recorder.money_moved("pay", 1)

    one()
    mode = "multiprocess (--workers N)" if directory else "in memory (one process)"
    print(f"metrics of a request, {mode}: {best(one, 100_000):.1f} us", flush=True)


def main() -> None:
    if sys.argv[1:] == ["--metrics"]:
        metrics_here()
        return
    access_line()
    metrics()


if __name__ == "__main__":
    main()
