"""The example-data folder: manifest.json plus one JSON Lines file per record kind.

``manifest.json`` holds the format name and version, and for each kind its file, record count
and SHA-256, so a truncated or edited file is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dompet.dataio.codec import decode, encode
from dompet.domain.invariants import InvariantReport, check
from dompet.domain.records import RECORD_KINDS, DataRecord, kind_of
from dompet.storage.port import LedgerStore

FORMAT = "dompet-example-data"
VERSION = 1
BATCH = 200

Progress = Callable[[int], None]
"""Told how many more records were written."""


class DatabaseNotEmpty(Exception):
    """The target database already holds data (load with force=True to add to it)."""


class BadDataFolder(ValueError):
    """The folder is not a valid example-data folder (manifest, checksum or record error)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    counts: dict[str, int]
    sha256: dict[str, str]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _line(record: DataRecord) -> bytes:
    return json.dumps(encode(record), ensure_ascii=False, sort_keys=True).encode() + b"\n"


async def dump(store: LedgerStore, folder: Path, progress: Progress | None = None) -> Manifest:
    """Write every record of the store into ``folder`` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a CLI step, local disk)
    handles = {kind: (folder / f"{kind}.jsonl").open("wb") for kind in RECORD_KINDS}
    digests = {kind: hashlib.sha256() for kind in RECORD_KINDS}
    counts = dict.fromkeys(RECORD_KINDS, 0)
    try:
        async for record in store.export_records():
            kind = kind_of(record)
            line = _line(record)
            handles[kind].write(line)
            digests[kind].update(line)
            counts[kind] += 1
            if progress:
                progress(1)
    finally:
        for handle in handles.values():
            handle.close()
    manifest = Manifest(counts, {kind: digests[kind].hexdigest() for kind in RECORD_KINDS})
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kinds": {
            kind: {"file": f"{kind}.jsonl", "count": counts[kind], "sha256": manifest.sha256[kind]}
            for kind in RECORD_KINDS
        },
    }
    (folder / "manifest.json").write_text(json.dumps(document, indent=2) + "\n")
    return manifest


def read_manifest(folder: Path) -> Manifest:
    """The folder's manifest, its files checked against their counts and checksums."""
    try:
        document = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise BadDataFolder(f"{folder}: no readable manifest.json ({exc})") from exc
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise BadDataFolder(f"{folder}: not a {FORMAT} version {VERSION} folder")
    counts: dict[str, int] = {}
    sha: dict[str, str] = {}
    for kind in RECORD_KINDS:
        entry = document["kinds"][kind]
        data = (folder / entry["file"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise BadDataFolder(f"{entry['file']}: checksum does not match manifest.json")
        if data.count(b"\n") != entry["count"]:
            raise BadDataFolder(f"{entry['file']}: record count does not match manifest.json")
        counts[kind] = entry["count"]
        sha[kind] = entry["sha256"]
    return Manifest(counts, sha)


def read_records(folder: Path) -> Iterator[DataRecord]:
    """Every record of the folder, in RECORD_KINDS order."""
    for kind in RECORD_KINDS:
        with (folder / f"{kind}.jsonl").open("rb") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    yield decode(kind, json.loads(line))
                except (KeyError, TypeError, ValueError) as exc:
                    raise BadDataFolder(f"{kind}.jsonl line {number}: {exc!r}") from exc


async def load(
    store: LedgerStore, folder: Path, *, force: bool = False, progress: Progress | None = None
) -> InvariantReport:
    """Load the folder into the store, ids kept; return the ledger check afterwards.

    Refuses (DatabaseNotEmpty) a database that holds any user, customer, journal or transfer
    unless ``force``; with ``force`` the records are added, and a clash of ids or unique
    values fails that batch (ValueError).
    """
    read_manifest(folder)
    if not force and not await store.is_empty():
        raise DatabaseNotEmpty("the database is not empty (use --force to add to it)")
    batch: list[DataRecord] = []
    for record in read_records(folder):
        batch.append(record)
        if len(batch) >= BATCH:
            await store.import_records(batch)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        await store.import_records(batch)
        if progress:
            progress(len(batch))
    return check(await store.snapshot())


async def records_of(store: LedgerStore) -> AsyncIterator[dict[str, Any]]:
    """The store's records as JSON objects (for comparing two databases)."""
    async for record in store.export_records():
        yield {"kind": kind_of(record), **encode(record)}
