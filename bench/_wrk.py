"""A cheap load generator for the collector benchmarks: wrk with a Lua script that POSTs
pre-built gzip envelopes.

The asyncio generator in ingest_bench.py costs about as much CPU as the server it loads (both
share the 2 cores). wrk is C: its Lua script only picks the next pre-formatted request, so nearly
all of the machine goes to the server. Every body is sent at most once while the run lasts if
enough are given (each has its own event id); past the end they are sent again from the start.

    result = wrk_load("127.0.0.1", port, "/api/1/envelope/", key, bodies, duration=8)
    result["status"]  # {200: n, ...}; result["p99_ms"], result["client_cpu_s"]
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

# Each wrk thread loads its share of the bodies (every n-th, from its own offset) into requests
# formatted once; request() then only returns the next one. Non-200 answers are counted per
# status; done() prints one JSON line that the benchmark reads.
_SCRIPT = r"""
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(args[1])
  local key = args[2]
  local blob = io.open(args[3], "rb"):read("*a")
  local sizes = {}
  for n in io.open(args[4], "r"):read("*a"):gmatch("%d+") do table.insert(sizes, tonumber(n)) end
  local headers = {
    ["Content-Type"] = "application/x-sentry-envelope",
    ["Content-Encoding"] = "gzip",
    ["X-Sentry-Auth"] = "Sentry sentry_version=7, sentry_key=" .. key,
  }
  requests = {}
  local pos = 1
  for i, size in ipairs(sizes) do
    if (i - 1) % nthreads == tid then
      table.insert(requests, wrk.format("POST", nil, headers, blob:sub(pos, pos + size - 1)))
    end
    pos = pos + size
  end
  blob = nil
  nxt = 0
  statuses = {}
end

function request()
  nxt = nxt % #requests + 1
  return requests[nxt]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests_)
  local total = {}
  for _, t in ipairs(threads) do
    for status = 100, 599 do
      local n = t:get("statuses")[status]
      if n then total[tostring(status)] = (total[tostring(status)] or 0) + n end
    end
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, string.format('"%s": %d', k, v)) end
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f,'
      .. ' "socket_errors": %d, "status": {%s}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, ", ")))
end
"""


def available() -> bool:
    """Whether wrk is installed (``apt-get install -y wrk``)."""
    return shutil.which("wrk") is not None


def wrk_load(
    host: str,
    port: int,
    path: str,
    key: str,
    bodies: list[bytes],
    duration: float,
    *,
    connections: int = 32,
    threads: int = 2,
) -> dict[str, Any]:
    """POST ``bodies`` (gzip envelopes) for ``duration`` seconds; statuses, latency and wrk's CPU."""
    with tempfile.TemporaryDirectory(prefix="tw-wrk-") as tmp:
        script, blob, sizes = Path(tmp, "post.lua"), Path(tmp, "bodies.bin"), Path(tmp, "sizes.txt")
        script.write_text(_SCRIPT)
        blob.write_bytes(b"".join(bodies))
        sizes.write_text("\n".join(str(len(b)) for b in bodies))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                f"http://{host}:{port}{path}",
                "--",
                str(threads),
                key,
                str(blob),
                str(sizes),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRK_RESULT "))
    result: dict[str, Any] = json.loads(line.split(" ", 1)[1])
    result["status"] = {int(k): v for k, v in result["status"].items()}
    result["client_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result
