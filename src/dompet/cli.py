"""The ``dompet`` command line: serve, worker, migrate, reconcile."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
from rich.console import Console

from dompet.config import Settings
from dompet.domain.invariants import InvariantReport, check

app = typer.Typer(help="Dompet: e-wallet and savings ledger service.", no_args_is_help=True)
console = Console()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (any engine, from DATABASE_URL)."""
    from dompet.storage import migrate as run_migrations

    settings = Settings()
    try:
        applied = asyncio.run(
            run_migrations(
                settings.database_url, mongodb_allow_standalone=settings.mongodb_allow_standalone
            )
        )
    except RuntimeError as exc:  # e.g. MongoDB that is not a replica set: say why, no traceback
        console.print(f"[red]migrate refused[/red]: {exc}")
        raise typer.Exit(2) from exc
    if applied:
        console.print(f"applied migrations: {', '.join(applied)}")
    else:
        console.print("schema is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: PORT)")] = None,
    workers: Annotated[int, typer.Option(help="HTTP worker processes")] = 1,
) -> None:
    """Serve both APIs (with the in-process settlement worker unless DOMPET_WORKER=0)."""
    import uvicorn

    settings = Settings()
    uvicorn.run(
        "dompet.api.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


@app.command()
def worker() -> None:
    """Run a settlement worker process (any number may run against one database)."""
    asyncio.run(_run_worker(Settings()))


async def _run_worker(settings: Settings) -> None:
    from dompet.container import Container, worker_config
    from dompet.worker.inprocess import SettlementWorker

    container = await Container.build(settings.model_copy(update={"worker_enabled": False}))
    runner = SettlementWorker(
        container.store,
        container.settlement,
        container.clock,
        worker_config(settings, "worker"),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runner.stop)
    console.print(f"settlement worker {runner.worker_id} running; Ctrl-C to stop")
    try:
        await runner.run()
    finally:
        await container.aclose()


@app.command()
def reconcile() -> None:
    """Check every ledger invariant; exit 1 if any is violated."""
    report = asyncio.run(_reconcile(Settings()))
    if report.ok:
        console.print(
            f"[green]ledger OK[/green]: {report.accounts_checked} customer accounts, "
            f"total {report.total_customer_balance}, in transit {report.transit_balance}"
        )
        return
    for violation in report.violations:
        console.print(f"[red]VIOLATION[/red] {violation}")
    raise typer.Exit(1)


async def _reconcile(settings: Settings) -> InvariantReport:
    from dompet.storage import open_store

    store = await open_store(
        settings.database_url, mongodb_allow_standalone=settings.mongodb_allow_standalone
    )
    try:
        return check(await store.snapshot())
    finally:
        await store.close()


if __name__ == "__main__":  # pragma: no cover
    app()
