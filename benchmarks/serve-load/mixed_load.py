"""Tail latency of `recfuse serve` under read load, alone and with 4 writers, before and after, in one run.

Both servers (``--before SRC`` runs another source tree, e.g. the last commit's ``src`` from ``git
archive``; the working tree is "after"; with ``--fit-model`` each tree fits the same model with its own
code, so that it can load it; or ``--variant NAME=ARGS`` twice or more: the working tree with different
``recfuse serve`` options, e.g. ``--workers``) are started side by side, each on a fresh store (an SQLite
file, or with ``--db`` fresh tables in PostgreSQL) seeded from the model's log, with a warm user-vector cache (every known user asked once); then, the servers
taking turns row by row:

1. at 1, 16 and 64 connections, for ``--seconds`` each: ``GET /v1/users/{id}/recommendations?k=10`` for
   random known users, read-only and then *mixed*: 4 writer clients posting batches of events for random
   known users at the same time (each batch invalidates its users' cached vectors, as live traffic does);
2. after the mixed runs, check that every event a writer got a 2xx for is in the store exactly once.

The readers are wrk (Debian's package; a Lua script picks the users and reports percentiles as JSON),
an independent C load generator that costs the 2 cores little; without wrk, an asyncio client on raw
HTTP/1.1 keep-alive connections stands in (``--client asyncio``).  The writers are an asyncio client in
its own process.  Load client and server share the machine: the figures are what one box does end to
end.  The load average is recorded before each server starts and after it stops.

    python benchmarks/serve-load/mixed_load.py --model DIR --out benchmarks/serve-load
    python benchmarks/serve-load/mixed_load.py --fit-model /tmp/m --out /tmp/x   # fits the model first
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "src"))

WRK_LUA = r"""
local users = {}
for line in io.lines(os.getenv("USERS_FILE")) do users[#users + 1] = line end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000) end
function request()
  return wrk.format("GET", "/v1/users/" .. users[math.random(#users)] .. "/recommendations?k=10")
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"errors": %d, "non2xx": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


FIT = r"""
import inspect, sys
from pathlib import Path
from recfuse.bundle import Bundle
from recfuse.data.split import leave_one_out
from recfuse.models.fusion import Fusion
from recfuse.serve.testing import genre_dataset

out, n_users, per_genre, epochs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = genre_dataset(n_users=n_users, per_genre=per_genre)
split = leave_one_out(data)
model = Fusion(epochs=epochs, embedding_size=64, max_len=50, long_len=200, batch_size=256, learning_rate=3e-3,
               progress=False, patience=epochs, seed=0)
meta = {"split": "loo", "seed": 0}
if "item_text" in inspect.signature(Fusion.fit).parameters:  # item text is an input of the fit
    from recfuse.text.cache import encode_items
    text = encode_items(split.train)[0]
    Bundle.from_fit(model.fit(split.train, split.valid, item_text=text), data, meta, text_vectors=text).save(out)
else:  # an older tree: the model encodes the log's item text itself
    Bundle.from_fit(model.fit(split.train, split.valid), data, meta).save(out)
"""


def fit_model(src: Path, out: Path, n_users: int, per_genre: int, epochs: int) -> Path:
    """A fusion model on recfuse.serve.testing's genre log (sized like ml-100k by default), fitted by the
    tree at ``src`` so that tree's server can load it (the saved format follows the code)."""
    if not (out / "bundle.json").is_file():
        t = time.perf_counter()
        env = {**os.environ, "PYTHONPATH": str(src), "OPENBLAS_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-c", FIT, str(out), str(n_users), str(per_genre), str(epochs)],
                       env=env, check=True)
        print(f"fitted {out} with {src} in {time.perf_counter() - t:.0f} s", flush=True)
    return out


def tcp_retransmits() -> int:
    """Segments this machine's TCP has retransmitted (``/proc/net/snmp``; 0 where there is none).

    On loopback a retransmit waits for the minimum RTO (200 ms), so any during a row shows up in its
    tail; they appear when the cores are oversubscribed, and a row with some measured the machine more
    than the server.
    """
    try:
        lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines() if ln.startswith("Tcp:")]
        return int(lines[1][lines[0].index("RetransSegs")])
    except (OSError, ValueError, IndexError):
        return 0


# ------------------------------------------------------------------ servers
class Server:
    """``python -m recfuse.serve`` from a source tree, on a fresh store: an SQLite file, or fresh tables
    (a unique prefix) in the PostgreSQL database ``pg``; or on the existing store ``db`` as it is."""

    def __init__(self, src: Path, model: Path, tmp: Path, extra: list[str], pg: str | None = None,
                 db: str | None = None) -> None:
        import uuid

        from recfuse.serve.testing import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = f"bench{uuid.uuid4().hex[:8]}_" if pg and not db else ""
        self.db = db or pg or f"sqlite:///{tmp / 'events.db'}"
        env = {**os.environ, "PYTHONPATH": str(src), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "recfuse.serve", "--model", str(model), "--db", self.db,
               "--port", str(self.port), "--no-text-preload", "--log-level", "warning", *extra]
        if self.prefix:
            cmd += ["--table-prefix", self.prefix]
        self.log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=self.log, cwd=tmp)

    def wait(self, timeout: float = 180) -> Server:
        from recfuse.serve.testing import wait_healthy

        wait_healthy(self.url, timeout, self.proc)  # type: ignore[arg-type]
        return self

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# ------------------------------------------------------------------ clients
async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes) -> tuple[int, bytes]:
    writer.write(head + body)
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status, await reader.readexactly(length)


async def asyncio_readers(url: str, users: list[str], connections: int, seconds: float) -> dict[str, Any]:
    """The stand-in for wrk: ``connections`` closed-loop clients on raw keep-alive HTTP/1.1."""
    import numpy as np

    host, port = url.split("//")[1].split(":")
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def one(w: int) -> None:
        nonlocal errors
        rng = random.Random(w)
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.perf_counter() < stop:
            path = f"/v1/users/{rng.choice(users)}/recommendations?k=10"
            t = time.perf_counter()
            status, _ = await _request(reader, writer, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), b"")
            lat.append(time.perf_counter() - t)
            errors += status >= 300
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(w) for w in range(connections)))
    a = np.asarray(lat) * 1000
    return {"requests": len(lat), "seconds": time.perf_counter() - t0, "p50_ms": float(np.percentile(a, 50)),
            "p90_ms": float(np.percentile(a, 90)), "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max()),
            "errors": errors, "non2xx": errors}


def wrk_readers(url: str, users_file: Path, lua: Path, connections: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(lua), url],
        env={**os.environ, "USERS_FILE": str(users_file)}, capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def writer_main(url: str, users_file: str, items_file: str, seconds: float, batch: int, pause: float,
                out_file: str, tag: str) -> None:
    """4 writer clients posting ``batch`` events for random known users, ``pause`` s apart (own process)."""
    users = Path(users_file).read_text().split()
    items = Path(items_file).read_text().split()
    host, port = url.split("//")[1].split(":")
    acked: list[str] = []
    statuses: Counter[int] = Counter()

    async def one(w: int) -> None:
        rng = random.Random(1000 + w)
        reader, writer = await asyncio.open_connection(host, int(port))
        stop = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < stop:
            now = time.time()
            events = [{"event_id": f"{tag}-w{w}-{n}-{j}", "user_id": rng.choice(users), "item_id": rng.choice(items),
                       "timestamp": now - 1, "type": "view"} for j in range(batch)]
            body = json.dumps({"events": events}).encode()
            head = (f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            status, answer = await _request(reader, writer, head, body)
            statuses[status] += 1
            if status == 200:
                acked.extend(x["event_id"] for x in json.loads(answer)["results"] if x["status"] in ("stored", "duplicate"))
            n += 1
            await asyncio.sleep(pause)
        writer.close()

    async def main() -> None:
        await asyncio.gather(*(one(w) for w in range(4)))

    asyncio.run(main())
    Path(out_file).write_text(json.dumps({"acked": acked, "statuses": dict(statuses)}))


# ------------------------------------------------------------------ one server
def measure(servers: dict[str, tuple[Path, list[str]]], model: Path, args: argparse.Namespace, users: list[str],
            items: list[str], use_wrk: bool) -> dict[str, Any]:
    """Every row on every server, the servers taking turns row by row (a drift in the machine's other
    load then falls on both alike); each server's store checked for the writers' events at the end."""
    from recfuse.serve.store import EventStore

    tmp = Path(tempfile.mkdtemp(prefix="serve-load-"))
    users_file, items_file, lua = tmp / "users.txt", tmp / "items.txt", tmp / "readers.lua"
    users_file.write_text("\n".join(users) + "\n")
    items_file.write_text("\n".join(items) + "\n")
    lua.write_text(WRK_LUA)
    out: dict[str, Any] = {name: {"rows": [], "load_before": os.getloadavg()} for name in servers}
    running: dict[str, Server] = {}
    try:
        for name, (src, extra) in servers.items():
            (tmp / name).mkdir()
            served = model if src == ROOT / "src" or args.fit_model is None else fit_model(
                src, tmp / name / "model", args.users, args.per_genre, args.epochs)
            running[name] = Server(src, served, tmp / name, [*args.server_args.split(), *extra], args.db).wait()
            asyncio.run(_warm(running[name].url, users))  # every known user once: a steady state's cache
        for mode in ("read-only", "mixed"):
            for c in args.concurrency:
                for name, server in running.items():
                    out[name]["rows"].append(_row(name, server, mode, c, args, tmp, users, users_file, items_file,
                                                  lua, use_wrk))
    finally:
        for server in running.values():
            server.stop()
    for name, server in running.items():
        store = EventStore(server.db, server.prefix)
        counts = Counter(store.event_ids())
        if server.prefix:
            store.drop()
        store.close()
        for row in out[name]["rows"]:
            acked = row.pop("_acked", None)
            if acked is not None:
                row["acked_missing"] = sum(counts[e] == 0 for e in acked)
                row["acked_twice"] = sum(counts[e] > 1 for e in acked)
        out[name]["load_after"] = os.getloadavg()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def _row(name: str, server: Server, mode: str, c: int, args: argparse.Namespace, tmp: Path, users: list[str],
         users_file: Path, items_file: Path, lua: Path, use_wrk: bool) -> dict[str, Any]:
    """One row: readers at ``c`` connections for ``args.seconds``, with the 4 writers when ``mode`` is mixed."""
    writer = None
    out_file = tmp / f"writers-{name}-{c}.json"
    if mode == "mixed":
        writer = subprocess.Popen([sys.executable, __file__, "--writer", server.url, str(users_file), str(items_file),
                                   str(args.seconds + 1), str(args.writer_batch), str(args.writer_pause_ms / 1000),
                                   str(out_file), f"{name}-c{c}"])
        time.sleep(0.5)
    retrans = tcp_retransmits()
    res = (wrk_readers(server.url, users_file, lua, c, args.seconds) if use_wrk
           else asyncio.run(asyncio_readers(server.url, users, c, args.seconds)))
    row = {"server": name, "mode": mode, "connections": c, "rps": res["requests"] / res["seconds"], **res,
           "tcp_retransmits": tcp_retransmits() - retrans, "load_1min": os.getloadavg()[0]}
    if writer is not None:
        writer.wait(60)
        w = json.loads(out_file.read_text())
        row["writer_batches"] = sum(w["statuses"].values())
        row["writer_non2xx"] = sum(n for st, n in w["statuses"].items() if not st.startswith("2"))
        row["events_acked"] = len(w["acked"])
        row["_acked"] = w["acked"]
    print(_line(row), flush=True)
    return row


async def _warm(url: str, users: list[str]) -> None:
    host, port = url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    for u in users:
        await _request(reader, writer, f"GET /v1/users/{u}/recommendations?k=10 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), b"")
    writer.close()


def _line(r: dict[str, Any]) -> str:
    w = f"  writers: {r['writer_batches']} batches, {r['events_acked']} events acked, {r['writer_non2xx']} non-2xx" \
        if "writer_batches" in r else ""
    return (f"{r['server']:>6} {r['mode']:>9} c={r['connections']:<3} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.2f}  "
            f"p90 {r['p90_ms']:7.2f}  p99 {r['p99_ms']:7.2f}  max {r['max_ms']:8.2f} ms  errors {r['errors'] + r['non2xx']}  "
            f"retransmits {r['tcp_retransmits']}  load {r['load_1min']:.2f}{w}")


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Serving tail latency, {' against '.join(result['servers'])} (one run)", "",
        (f"{result['machine']}; model: {result['model']}; {result['seconds']:g} s per row; readers: {result['readers']}; "
         f"writers: 4 clients, batches of {result['writer_batch']} events, {result['writer_pause_ms']:g} ms apart."),
        f"Server: `{result['server_args']}`, store: {result.get('store', 'sqlite')}.",
        *[f"- {name}: `{extra}`" for name, extra in result.get("variants", {}).items() if extra],
        *([f"Note: {result['note']}"] if result.get("note") else []), "",
        ("| server | mode | connections | req/s | p50 ms | p99 ms | max ms | errors | events acked | acked not stored "
         "| TCP retransmits | load (1 min) |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in result["servers"].items():
        for r in run["rows"]:
            lines.append(
                f"| {name} | {r['mode']} | {r['connections']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                f"{r['max_ms']:.1f} | {r['errors'] + r['non2xx'] + r.get('writer_non2xx', 0)} | {r.get('events_acked', '')} | "
                f"{'' if 'acked_missing' not in r else r['acked_missing'] + r['acked_twice']} | {r['tcp_retransmits']} | "
                f"{r['load_1min']:.2f} |")
    first = next(iter(result["servers"].values()))
    lines += ["", (f"Load average (1, 5, 15 min) before the servers started: {first['load_before'][0]:.2f}, "
                  f"{first['load_before'][1]:.2f}, {first['load_before'][2]:.2f}; after they stopped: "
                  f"{first['load_after'][0]:.2f}, {first['load_after'][1]:.2f}, {first['load_after'][2]:.2f}.  "
                  "The servers took turns row by row.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        a = sys.argv[2:]
        writer_main(a[0], a[1], a[2], float(a[3]), int(a[4]), float(a[5]), a[6], a[7])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="model directory to serve")
    ap.add_argument("--fit-model", type=Path, help="fit the benchmark's model there first (when missing) and serve it")
    ap.add_argument("--users", type=int, default=943, help="users of the fitted model's log")
    ap.add_argument("--per-genre", type=int, default=420, help="items per genre of the fitted model's catalogue")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--before", type=Path, help="a source tree (its src/) to measure first, as 'before'")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    ap.add_argument("--writer-batch", type=int, default=20)
    ap.add_argument("--writer-pause-ms", type=float, default=50.0)
    ap.add_argument("--server-args", default="", help="extra `recfuse serve` options for both servers")
    ap.add_argument("--variant", action="append", metavar="NAME=ARGS",
                    help="a server of the working tree named NAME with these extra `recfuse serve` options, "
                         "instead of 'after' (repeat: e.g. one='--workers 1' two='--workers 2')")
    ap.add_argument("--db", metavar="PG_URL", help="serve from fresh tables in this PostgreSQL database "
                    "(dropped after) instead of a fresh SQLite file")
    ap.add_argument("--client", choices=["wrk", "asyncio"], default="wrk" if shutil.which("wrk") else "asyncio")
    ap.add_argument("--out", type=Path, default=HERE, help="where results.json and results.md go")
    ap.add_argument("--note", default="", help="free text saved with the results (e.g. other load on the machine)")
    args = ap.parse_args()
    if args.fit_model is not None:
        args.model = fit_model(ROOT / "src", args.fit_model, args.users, args.per_genre, args.epochs)
    if args.model is None:
        ap.error("give --model DIR or --fit-model DIR")
    args.model = args.model.resolve()  # the servers run in their own folders
    from recfuse.bundle import Bundle

    bundle = Bundle.load(args.model)
    users = [str(u) for u in bundle.users.external_ids]
    items = [str(i) for i in bundle.items.external_ids]
    servers: dict[str, tuple[Path, list[str]]] = {"before": (args.before / "src", [])} if args.before else {}
    if args.variant:
        for v in args.variant:
            name, _, extra = v.partition("=")
            servers[name] = (ROOT / "src", extra.split())
    else:
        servers["after"] = (ROOT / "src", [])
    result: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), no GPU",
        "model": f"{bundle.model.name}, {len(users)} users, {len(items)} items ({args.model.name})",
        "seconds": args.seconds, "readers": f"{args.client}, closed loop, one keep-alive connection each",
        "writer_batch": args.writer_batch, "writer_pause_ms": args.writer_pause_ms,
        "server_args": f"--threads 1 {args.server_args}".strip(), "store": "postgresql" if args.db else "sqlite",
        "variants": {name: " ".join(extra) for name, (_, extra) in servers.items()}, "note": args.note, "servers": {},
    }
    result["servers"] = measure(servers, args.model, args, users, items, args.client == "wrk")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "results.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
