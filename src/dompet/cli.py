"""The ``dompet`` command line: serve, worker, migrate, reconcile, example-data."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dompet.config import Settings
from dompet.domain.invariants import InvariantReport, check

if TYPE_CHECKING:
    from dompet.dataio.folder import Manifest

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

    from dompet.observability.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    uvicorn.run(
        "dompet.api.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,
    )


@app.command()
def worker() -> None:
    """Run a settlement worker process (any number may run against one database)."""
    from dompet.observability.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(_run_worker(settings))


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


# -- example data ----------------------------------------------------------------------------
example_data = typer.Typer(
    help="Load, dump or build example data (a portable folder; see docs/example-data.md).",
    no_args_is_help=True,
)
app.add_typer(example_data, name="example-data")

FolderArg = Annotated[Path, typer.Argument(help="The example-data folder")]


@example_data.command("load")
def example_data_load(
    folder: FolderArg = Path("example_data"),
    force: Annotated[
        bool, typer.Option("--force", help="Add to a database that already holds data")
    ] = False,
) -> None:
    """Load an example-data folder into DATABASE_URL (migrate first), ids preserved."""
    from dompet.dataio.folder import BadDataFolder, DatabaseNotEmpty

    try:
        report = asyncio.run(_load(Settings(), folder, force))
    except (DatabaseNotEmpty, BadDataFolder, ValueError) as exc:
        console.print(f"[red]not loaded[/red]: {exc}")
        raise typer.Exit(1) from None
    if not report.ok:
        for violation in report.violations:
            console.print(f"[red]VIOLATION[/red] {violation}")
        raise typer.Exit(1)
    console.print(
        f"[green]loaded[/green] {folder}: {report.accounts_checked} customer accounts, "
        f"total {report.total_customer_balance}; ledger OK"
    )


async def _load(settings: Settings, folder: Path, force: bool) -> InvariantReport:
    from dompet.dataio.folder import DatabaseNotEmpty, load, read_manifest
    from dompet.storage import open_store

    total = read_manifest(folder).total
    store = await open_store(
        settings.database_url, mongodb_allow_standalone=settings.mongodb_allow_standalone
    )
    try:
        if not force and not await store.is_empty():
            raise DatabaseNotEmpty("the database is not empty (use --force to add to it)")
        with _progress() as bar:
            task = bar.add_task("loading", total=total)
            return await load(store, folder, force=force, progress=lambda n: bar.advance(task, n))
    finally:
        await store.close()


@example_data.command("dump")
def example_data_dump(folder: FolderArg) -> None:
    """Write the database at DATABASE_URL into an example-data folder."""
    manifest = asyncio.run(_dump(Settings(), folder))
    console.print(f"wrote {manifest.total} records to {folder}")


async def _dump(settings: Settings, folder: Path) -> Manifest:
    from dompet.dataio.folder import dump
    from dompet.storage import open_store

    store = await open_store(
        settings.database_url, mongodb_allow_standalone=settings.mongodb_allow_standalone
    )
    try:
        with _progress() as bar:
            task = bar.add_task("dumping", total=None)
            return await dump(store, folder, progress=lambda n: bar.advance(task, n))
    finally:
        await store.close()


@example_data.command("build")
def example_data_build(folder: FolderArg = Path("example_data")) -> None:
    """Generate the example data (the seed's story and more) by driving the real services."""
    from dompet.dataio.build import build

    manifest = asyncio.run(build(folder))
    console.print(f"wrote {manifest.total} records to {folder}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


if __name__ == "__main__":  # pragma: no cover
    app()
