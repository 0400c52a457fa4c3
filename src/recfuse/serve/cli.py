"""``recfuse serve``: the recommendation service under uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def serve(
    model: Annotated[Path, typer.Option("--model", "-m", help="Model directory written by `recfuse train` (bundle.json inside).")],
    db: Annotated[str, typer.Option("--db", help="Event store URL: sqlite:///FILE (embedded default) or postgresql+psycopg://USER@HOST:PORT/DB. Created or migrated on start.")] = "sqlite:///recfuse.db",
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="TCP port.")] = 8000,
    table_prefix: Annotated[str, typer.Option("--table-prefix", help="Prefix for the store's table names (several services or tests in one database).")] = "",
    threads: Annotated[int, typer.Option("--threads", min=1, help="Torch threads for scoring (1 leaves the other core of a 2-core machine to HTTP and the database).")] = 1,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, max=1024, help="Most concurrent recommendation requests scored in one forward pass.")] = 64,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0.0, help="How long the batcher waits for more requests after the first (0: only what is queued).")] = 0.0,
    switch_interval_ms: Annotated[float, typer.Option("--switch-interval-ms", min=0.01, help="Python's GIL switch interval: how long the scoring or ingest thread waits for the busy HTTP event loop to yield the interpreter, at every step of a forward pass, and the other way round (Python's default: 5).")] = 1.0,
    user_cache: Annotated[int, typer.Option("--user-cache", min=0, help="User vectors kept between requests, keyed by the user's event count and the log2 bucket of time since their last event (0: recompute every request).")] = 100_000,
    no_seed: Annotated[bool, typer.Option("--no-seed", help="Do not load the model's training log into an empty store.")] = False,
    no_text_preload: Annotated[bool, typer.Option("--no-text-preload", help="Load the text encoder on first use instead of at start.")] = False,
    llm: Annotated[str | None, typer.Option("--llm", help="Who phrases explain=text and /v1/users/{id}/profile, as for `recfuse explain --llm`: 'template', 'local' (SmolLM2-135M, offline), a .gguf file or model folder, or an OpenAI-compatible URL. Default: $RECFUSE_LLM_URL / $RECFUSE_LLM, else template.")] = None,
    llm_timeout: Annotated[float, typer.Option("--llm-timeout", min=0.1, help="Seconds one request may spend generating words; past them (and on any generator failure) it gets the template sentences.")] = 10.0,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level: critical, error, warning, info, debug.")] = "info",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Replica processes on this one port (the kernel shares connections among them), kept coherent through the store; more than 1 needs a PostgreSQL store.")] = 1,
    index: Annotated[str, typer.Option("--index", help="How the top-k items are found: auto (exact search below 20,000 items, a FAISS HNSW graph above), exact, or hnsw.")] = "auto",
    no_sync: Annotated[bool, typer.Option("--no-sync", help="On a PostgreSQL store, neither announce this process's writes to other replicas nor listen for theirs (only when it is the store's one service).")] = False,
) -> None:
    """Serve real-time recommendations over HTTP (OpenAPI docs at /docs).

    On start: create or migrate the store's schema, load the model directory,
    seed an empty store with the model's training log, load every user's
    history into memory.  Admin routes need RECFUSE_ADMIN_KEY in the
    environment; RECFUSE_API_KEY, when set, guards the event and
    recommendation routes too.  Keys are read from the environment only, never
    from the command line (which other users can see).
    """
    if not (model / "bundle.json").is_file():
        raise typer.BadParameter(f"{model}: not a recfuse model directory (no bundle.json); make one with `recfuse train`", param_hint="--model")
    import uvicorn

    from recfuse.llm.generators import GenerationError, generator_from_option
    from recfuse.serve.app import create_app
    from recfuse.serve.service import ServeConfig
    from recfuse.serve.store import EventStore, StoreError

    try:
        generator_from_option(llm)
    except (GenerationError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--llm") from None
    try:
        store = EventStore(db)
        dialect = store.dialect
        store.close()
    except StoreError as e:
        raise typer.BadParameter(str(e), param_hint="--db") from None
    from recfuse.serve.index import KINDS

    if index not in KINDS:
        raise typer.BadParameter(f"{index!r}; choose one of {', '.join(KINDS)}", param_hint="--index")
    if workers > 1 and (dialect != "postgresql" or no_sync):
        why = "an SQLite file serves one process" if dialect != "postgresql" else "--no-sync leaves them incoherent"
        raise typer.BadParameter(f"--workers {workers} needs a PostgreSQL store with sync on ({why})", param_hint="--workers")
    config = ServeConfig(
        model_dir=model, db=db, table_prefix=table_prefix, threads=threads, max_batch=max_batch,
        max_wait_ms=max_wait_ms, switch_interval_ms=switch_interval_ms, user_cache=user_cache, seed=not no_seed, preload_text=not no_text_preload,
        llm=llm, llm_timeout=llm_timeout, sync=not no_sync, index=index,
    )
    if workers == 1:
        uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, access_log=False)
        return
    from recfuse.serve.app import CONFIG_ENV
    from recfuse.serve.service import prepare_store

    prepare_store(config)  # migrate and seed once, before the workers start
    os.environ[CONFIG_ENV] = config.to_json()
    uvicorn.run("recfuse.serve.app:app_from_environment", factory=True, workers=workers, host=host, port=port,
                log_level=log_level, access_log=False)


def register(app: typer.Typer) -> None:
    app.command("serve", help=serve.__doc__)(serve)
