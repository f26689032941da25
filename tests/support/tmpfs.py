"""A small filesystem of its own for a test: a size-limited tmpfs that the test can fill.

``with tmpfs(path, "16m") as mounted:`` mounts it (root only), and unmounts it whatever happens.
When mounting is not permitted (not root, a container without the capability) the test is
skipped, saying why, or fails under ``DOMPET_REQUIRE_SERVERS=1`` (CI).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import ServerUnavailable, require_or_skip


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        require_or_skip(
            ServerUnavailable(
                f"cannot mount a tmpfs at {path} (needs root and CAP_SYS_ADMIN): "
                + (mounted.stderr.strip() or f"exit code {mounted.returncode}")
            )
        )
    try:
        yield path
    finally:
        result = subprocess.run(["umount", str(path)], capture_output=True, check=False)
        if result.returncode != 0:  # still busy (a process of the test): detach it anyway
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(path: Path) -> int:
    """Write ``path`` until its filesystem has no byte left; how many bytes it took."""
    written = 0
    with path.open("wb", buffering=0) as out:
        for size in (1 << 20, 1 << 12, 1 << 9, 1):
            chunk = b"\0" * size
            while True:
                try:
                    out.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                written += size
        os.fsync(out.fileno())
    return written
