"""Serve an ASGI app factory under uvicorn in one process, or in N balanced worker processes.

``--workers 1`` is one uvicorn server in this process (what :func:`uvicorn.run` does).
With ``--workers N`` (N > 1) a small supervisor starts N processes and **each binds its own
listening socket** on the same host:port with ``SO_REUSEPORT``: the Linux kernel then spreads
new connections over the N sockets (a hash of the connection's address 4-tuple), so
keep-alive connections land evenly on the workers.  uvicorn's own multiprocess mode shares
one listening socket, and whichever process wakes first accepts a whole burst of connections
(measured: 64 keep-alive connections all on one of two workers).  See docs/serving.md.

The supervisor does what uvicorn's does: a worker that dies is replaced; SIGINT / SIGTERM stop
every worker gracefully (in-flight requests finish); a worker that cannot start (port taken,
app factory failing) stops the whole server with uvicorn's exit code 3.  A worker whose
supervisor vanished (SIGKILL) stops by itself, so no orphan keeps the port.

Used by ``dompet serve`` and by the benchmark::

    python -m dompet.serving bench.bare:create_app --host 127.0.0.1 --port 8000 --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.config
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Literal

import uvicorn
from uvicorn.config import LOGGING_CONFIG, STARTUP_FAILURE

from dompet.serving_http import OneWriteHttpToolsProtocol

logger = logging.getLogger("uvicorn.error")  # as uvicorn's own supervisor logs

LogSetup = Literal["uvicorn", "dompet"]
EventLoop = Literal["asyncio", "uvloop"]
Writes = Literal["one", "uvicorn"]
_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class ServeOptions:
    """What to serve and how; pickled into every worker process."""

    app: str
    """Import string of an app factory, ``module:function`` (called with no arguments)."""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "info"
    access_log: bool = False
    logs: LogSetup = "uvicorn"
    """``uvicorn``: uvicorn's default log config; ``dompet``: Dompet's (JSON, request ids)."""
    loop: EventLoop = "asyncio"
    """The event loop. asyncio's serves connections in turn; under a saturated CPU uvloop
    (uvicorn's default when installed) left a few connections waiting 10-30 times the median:
    p99 150 ms against asyncio's 13 ms at 64 connections, for 5 % more throughput
    (docs/serving.md)."""
    writes: Writes = "one"
    """``one``: a response's headers and body reach the socket in one write
    (:mod:`dompet.serving_http`); ``uvicorn``: uvicorn's own two writes, for A/B runs."""
    forwarded_allow_ips: str | None = None
    """Proxies trusted to name the client in X-Forwarded-For (FORWARDED_ALLOW_IPS). None: no
    proxy is trusted, and the client address is the socket peer (uvicorn would otherwise trust
    127.0.0.1, letting any local process claim any address)."""


def serve(options: ServeOptions) -> int:
    """Serve until SIGINT / SIGTERM; the process exit code (0, or 3 if the server never started)."""
    if options.workers < 1:
        raise ValueError("workers must be at least 1")
    if options.workers == 1:
        return _serve_in_process(options)
    _setup_logging(options, supervisor=True)
    return _Supervisor(options).run()


def bind_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP listening-ready socket bound to host:port (``listen`` is left to the server).

    Accepted connections must get TCP_NODELAY, or every keep-alive response after the first
    waits ~40 ms for the client's delayed ACK (uvicorn issue #3149: a pre-bound socket has
    ``proto`` 0, and asyncio's loop only sets TCP_NODELAY on sockets whose ``proto`` is TCP).
    So the socket is made with ``proto=IPPROTO_TCP`` and TCP_NODELAY is also set on it (Linux
    copies it to accepted sockets); uvloop sets it on every TCP connection anyway.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


# -- one process ----------------------------------------------------------------------------------
def _setup_logging(options: ServeOptions, *, supervisor: bool = False) -> None:
    """Dompet's logging if asked; uvicorn's comes with uvicorn.Config, but not in the supervisor."""
    if options.logs == "dompet":
        from dompet.config import Settings
        from dompet.observability.logging import configure_logging

        settings = Settings()
        configure_logging(settings.log_level, settings.log_json)
    elif supervisor:
        logging.config.dictConfig(LOGGING_CONFIG)
        logger.setLevel(options.log_level.upper())


def _log_config(options: ServeOptions) -> dict[str, Any] | None:
    return LOGGING_CONFIG if options.logs == "uvicorn" else None


def _uvicorn_config(options: ServeOptions) -> uvicorn.Config:
    """The uvicorn configuration of one serving process (the only one, or a worker)."""
    return uvicorn.Config(
        options.app,
        factory=True,
        host=options.host,
        port=options.port,
        workers=1,
        loop=options.loop,
        log_level=options.log_level.lower(),
        access_log=options.access_log,
        proxy_headers=options.forwarded_allow_ips is not None,
        forwarded_allow_ips=options.forwarded_allow_ips,
        log_config=_log_config(options),
        http=OneWriteHttpToolsProtocol if options.writes == "one" else "httptools",
    )


def _serve_in_process(options: ServeOptions) -> int:
    """What ``uvicorn.run`` does for one process: serve, exit code 3 if it never started."""
    _setup_logging(options)
    server = uvicorn.Server(_uvicorn_config(options))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else STARTUP_FAILURE


# -- worker processes -----------------------------------------------------------------------------
def _worker_main(options: ServeOptions) -> None:
    """Entry point of one worker process (spawned): own SO_REUSEPORT socket, one uvicorn server."""
    _setup_logging(options)
    config = _uvicorn_config(options)
    try:
        sock = bind_socket(options.host, options.port, reuse_port=True)
    except OSError as exc:
        logger.error(
            "worker [%d] cannot bind %s:%d: %s", os.getpid(), options.host, options.port, exc
        )
        sys.exit(STARTUP_FAILURE)
    _stop_when_orphaned()
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # SIGINT is re-raised after a graceful stop
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _stop_when_orphaned() -> None:
    """If the supervisor dies without stopping us (SIGKILL), stop gracefully: free the port."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


class _Supervisor:
    """Start N worker processes, replace any that dies, stop them all on SIGINT / SIGTERM."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self._context = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        self._workers: list[BaseProcess] = []
        self.exit_code = 0

    def run(self) -> int:
        options = self.options
        try:
            self.options = options = _claim_port(options)
        except OSError as exc:
            logger.error("cannot bind %s:%d: %s", options.host, options.port, exc)
            return STARTUP_FAILURE
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            logger.info(
                "supervisor [%d] serving %s on http://%s:%d with %d workers (SO_REUSEPORT)",
                os.getpid(),
                options.app,
                options.host,
                options.port,
                options.workers,
            )
            self._workers = [self._start_worker() for _ in range(options.workers)]
            while not self._stop.wait(_POLL_SECONDS):
                self._replace_dead_workers()
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.exit_code

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _start_worker(self) -> BaseProcess:
        process = self._context.Process(
            target=_worker_main, args=(self.options,), name="dompet-http-worker"
        )
        process.start()
        logger.info("started worker process [%s]", process.pid)
        return process

    def _replace_dead_workers(self) -> None:
        for index, process in enumerate(self._workers):
            if process.is_alive():
                continue
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logger.error("worker [%s] failed to start; stopping the server", process.pid)
                self.exit_code = STARTUP_FAILURE
                self._stop.set()
                return
            if self._stop.is_set():
                return
            logger.warning(
                "worker [%s] died (exit code %s); replacing it", process.pid, process.exitcode
            )
            self._workers[index] = self._start_worker()

    def _stop_all(self) -> None:
        """SIGTERM every worker (graceful: in-flight requests finish), then wait for each."""
        for process in self._workers:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self._workers:
            process.join()
            logger.info("worker [%s] stopped", process.pid)


def _claim_port(options: ServeOptions) -> ServeOptions:
    """Check host:port is free (and pick one for port 0) before the workers bind it.

    Probe without SO_REUSEPORT: a server still listening there, even one using SO_REUSEPORT
    itself, makes this fail, instead of our workers silently sharing its port.
    """
    with bind_socket(options.host, options.port, reuse_port=False) as probe:
        port: int = probe.getsockname()[1]
    if port == options.port:
        return options
    return ServeOptions(**{**options.__dict__, "port": port})


# -- command line ---------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dompet.serving module:factory [--host] [--port] [--workers] [--log-level]``."""
    parser = argparse.ArgumentParser(
        prog="python -m dompet.serving",
        description="Serve an ASGI app factory under uvicorn, N workers balanced by SO_REUSEPORT.",
    )
    parser.add_argument("app", help="app factory import string, module:function")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action="store_true", help="uvicorn's access log")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--writes",
        choices=("one", "uvicorn"),
        default="one",
        help="one socket write per response (default) or uvicorn's two",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return serve(
        ServeOptions(
            app=args.app,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=args.access_log,
            loop=args.loop,
            writes=args.writes,
        )
    )


if __name__ == "__main__":
    # Run the imported module's main, so spawned workers find `dompet.serving._worker_main`.
    import dompet.serving

    sys.exit(dompet.serving.main())
