"""The ``dompet`` command line: serve, worker, migrate, reconcile, purge-idempotency,
example-data, and the dashboard's operators (create-operator, remove-operator)."""

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
    workers: Annotated[int, typer.Option(min=1, help="HTTP worker processes")] = 1,
) -> None:
    """Serve both APIs (with the in-process settlement worker unless DOMPET_WORKER=0 or
    REDIS_URL is set: then `dompet worker --queue saq` processes settle).

    With --workers N > 1 every worker process listens on its own SO_REUSEPORT socket, so the
    kernel spreads connections evenly over them (docs/serving.md)."""
    from dompet.serving import ServeOptions
    from dompet.serving import serve as run_server

    settings = Settings()
    code = run_server(
        ServeOptions(
            app="dompet.api.app:create_app",
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            log_level=settings.log_level,
            logs="dompet",
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
    )
    if code:
        raise typer.Exit(code)


@app.command()
def worker(
    queue: Annotated[
        str | None,
        typer.Option(help="auto (saq when REDIS_URL is set, else db), db or saq"),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=64, help="Settlement loops in this process")
    ] = None,
) -> None:
    """Run settlement worker loops (any number of processes may run against one database).

    SIGTERM / SIGINT stop gracefully: the settlement in flight finishes and every claim the
    worker still holds is released for the others.
    """
    from dompet.observability.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    chosen = queue or settings.worker_queue
    if chosen not in ("auto", "db", "saq"):
        raise typer.BadParameter("--queue must be auto, db or saq")
    if chosen == "auto":
        chosen = "saq" if settings.redis_url else "db"
    if chosen == "saq" and not settings.redis_url:
        raise typer.BadParameter("--queue saq needs REDIS_URL")
    asyncio.run(_run_worker(settings, chosen, concurrency or settings.worker_concurrency))


async def _run_worker(settings: Settings, queue: str, concurrency: int) -> None:
    from dompet.container import Container, worker_config
    from dompet.worker.inprocess import SettlementWorker

    # This process is a worker: no in-process loop and no SAQ producer of its own.
    container = await Container.build(settings.model_copy(update={"worker_enabled": False}))
    loop = asyncio.get_running_loop()
    try:
        if queue == "saq":
            from dompet.worker.saq import run_saq_worker

            await run_saq_worker(container, concurrency, loop)
            return
        runners = [
            SettlementWorker(
                container.store,
                container.settlement,
                container.clock,
                worker_config(settings, "worker", "standalone", f"-{i}" if concurrency > 1 else ""),
            )
            for i in range(1, concurrency + 1)
        ]

        def stop_all() -> None:
            for runner in runners:
                runner.stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_all)
        console.print(
            f"settlement worker {runners[0].worker_id} running (db queue, "
            f"concurrency {concurrency}); Ctrl-C to stop"
        )
        await asyncio.gather(*(runner.run() for runner in runners))
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
    from dompet.container import open_settings_store

    store = await open_settings_store(settings)
    try:
        return check(await store.snapshot())
    finally:
        await store.close()


@app.command("purge-idempotency")
def purge_idempotency() -> None:
    """Delete the expired idempotency keys (and the throttles and sessions that expired) now
    (the workers also do it every IDEMPOTENCY_PURGE_SECONDS); print how many were deleted."""
    keys, others = asyncio.run(_purge_idempotency(Settings()))
    console.print(f"deleted {keys} expired idempotency keys")
    console.print(f"deleted {others} expired throttles and sessions")


async def _purge_idempotency(settings: Settings) -> tuple[int, int]:
    from dompet.container import open_settings_store
    from dompet.services.idempotency_purge import (
        purge_expired_idempotency_keys,
        purge_expired_sessions_and_throttles,
    )
    from dompet.services.ports import utc_now

    store = await open_settings_store(settings)
    try:
        now = utc_now()
        keys = await purge_expired_idempotency_keys(store, now)
        return keys, await purge_expired_sessions_and_throttles(store, now)
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
    """Load an example-data folder into DATABASE_URL (migrate first), ids preserved.

    Refused in production: the example users' PINs are published (docs/example-data.md)."""
    from dompet.dataio.folder import BadDataFolder, DatabaseNotEmpty

    settings = Settings()
    if settings.env == "production":
        console.print(
            "[red]not loaded[/red]: example data is refused in production "
            "(DOMPET_ENV=production): its users' PINs are published"
        )
        raise typer.Exit(1)
    try:
        report = asyncio.run(_load(settings, folder, force))
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
    from dompet.container import open_settings_store
    from dompet.dataio.folder import DatabaseNotEmpty, load, read_manifest

    total = read_manifest(folder).total
    store = await open_settings_store(settings)
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
    from dompet.container import open_settings_store
    from dompet.dataio.folder import dump

    store = await open_settings_store(settings)
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


# -- operators (issue 4) -------------------------------------------------------------------
@app.command("create-operator")
def create_operator(
    username: Annotated[str, typer.Argument(help="Login name (3-64 of a-z 0-9 . _ -)")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
) -> None:
    """Create a dashboard operator (password hashed with Argon2id)."""
    import sys

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    asyncio.run(_create_operator(Settings(), username, password))


async def _create_operator(settings: Settings, username: str, password: str) -> None:
    from dompet.container import open_settings_store, pin_hasher
    from dompet.domain.errors import DomainError
    from dompet.services.monitoring import OperatorService
    from dompet.services.ports import utc_now

    store = await open_settings_store(settings)
    try:
        operator = await OperatorService(store, pin_hasher(settings), utc_now).create(
            username, password
        )
    except DomainError as exc:
        console.print(f"[red]error[/red]: {exc.message}")
        raise typer.Exit(1) from None
    finally:
        await store.close()
    console.print(f"operator {operator.username} created")


@app.command("remove-operator")
def remove_operator(
    username: Annotated[str, typer.Argument(help="The operator's login name")],
) -> None:
    """Remove a dashboard operator; every session of theirs ends at once."""
    asyncio.run(_remove_operator(Settings(), username))


async def _remove_operator(settings: Settings, username: str) -> None:
    from dompet.container import open_settings_store, pin_hasher
    from dompet.services.monitoring import OperatorService
    from dompet.services.ports import utc_now

    store = await open_settings_store(settings)
    try:
        removed = await OperatorService(store, pin_hasher(settings), utc_now).remove(username)
    finally:
        await store.close()
    if not removed:
        console.print(f"[red]error[/red]: no operator {username}")
        raise typer.Exit(1)
    console.print(f"operator {username.strip().lower()} removed; their sessions ended")


async def _set_blocked(settings: Settings, account_id: str, blocked: bool) -> None:
    from dompet.container import open_settings_store

    store = await open_settings_store(settings)
    try:
        changed = await store.set_account_blocked(account_id, blocked)
    finally:
        await store.close()
    if not changed:
        console.print(f"[red]error[/red]: no customer account {account_id}")
        raise typer.Exit(1)
    console.print(f"account {account_id} {'blocked' if blocked else 'unblocked'}")


@app.command("block-account")
def block_account(
    account_id: Annotated[str, typer.Argument(help="e.g. wallet:<user_id> or savings:<no>")],
) -> None:
    """Block an account: it can neither send nor receive (settlements to it retry)."""
    asyncio.run(_set_blocked(Settings(), account_id, True))


@app.command("unblock-account")
def unblock_account(
    account_id: Annotated[str, typer.Argument(help="e.g. wallet:<user_id> or savings:<no>")],
) -> None:
    """Unblock an account."""
    asyncio.run(_set_blocked(Settings(), account_id, False))


if __name__ == "__main__":  # pragma: no cover
    app()
