"""Run wrk with a generated Lua script and read its figures back as JSON."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""

_PREAMBLE = """
local n = 0
local nthreads = 0
function setup(thread)
  thread:set("offset", nthreads * 7919)
  nthreads = nthreads + 1
end
function init(args)
  n = offset or 0
  math.randomseed(n + 1)
end
"""


def lua_list(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("bench: wrk not found; install it (Debian: apt-get install wrk)")
    return found


def run_wrk(
    url: str, request_lua: str, *, connections: int, duration: float, threads: int = 1
) -> WrkResult:
    """Drive ``url`` for ``duration`` seconds; ``request_lua`` defines ``request()``."""
    script = _PREAMBLE + request_lua + _DONE
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        path = Path(handle.name)
    try:
        cmd = [
            wrk_binary(),
            f"-t{max(1, min(threads, connections))}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(path),
            url,
        ]
        out = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=duration + 60
        )
    finally:
        path.unlink(missing_ok=True)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line.removeprefix("BENCH_JSON "))
            errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
            return WrkResult(
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                errors=int(errors),
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                max_ms=data["max_us"] / 1000,
            )
    raise RuntimeError(f"wrk gave no figures (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")


def post_lua(path: str, bodies: list[str], tokens: list[str] | None = None) -> str:
    """``request()`` for a POST cycling through bodies (and bearer tokens, same index).

    Every distinct request is formatted once, in ``init``: wrk's own CPU time is taken from
    the server's two cores, so ``request()`` only picks one.
    """
    count = len(bodies) if tokens is None else math.lcm(len(bodies), len(tokens))
    auth = ""
    if tokens is not None:
        auth = 'h["Authorization"] = "Bearer " .. tokens[(k % #tokens) + 1]'
    return f"""
local bodies = {lua_list(bodies)}
local tokens = {lua_list(tokens or [])}
local requests = {{}}
local base_init = init
function init(args)
  base_init(args)
  for k = 0, {count - 1} do
    local h = {{["Content-Type"] = "application/json"}}
    {auth}
    requests[k + 1] = wrk.format("POST", {json.dumps(path)}, h, bodies[(k % #bodies) + 1])
  end
end
function request()
  n = n + 1
  return requests[(n % #requests) + 1]
end
"""


def get_lua(paths: list[str], token: str) -> str:
    """``request()`` for a GET of a random path from ``paths`` with one bearer token (each
    request formatted once, in ``init``, as in :func:`post_lua`)."""
    return f"""
local paths = {lua_list(paths)}
local h = {{["Authorization"] = {json.dumps("Bearer " + token)}}}
local requests = {{}}
local base_init = init
function init(args)
  base_init(args)
  for k = 1, #paths do
    requests[k] = wrk.format("GET", paths[k], h)
  end
end
function request()
  return requests[math.random(#requests)]
end
"""
