"""`stylesearch serve`: load the model and index once, then run the search API and page under uvicorn."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import typer

from stylesearch.cli.base import app, console, err_console, friendly
from stylesearch.config import ServeConfig


@app.command("serve")
@friendly
def serve_command(
    index: Path = typer.Option(..., "--index", "-i", help="Index directory (stylesearch index)."),
    host: str = typer.Option(ServeConfig.host, "--host", help="Address to listen on. Keep 127.0.0.1 unless a "
                             "TLS proxy sits in front."),
    port: int = typer.Option(ServeConfig.port, "--port", "-p", min=0, max=65535, help="0 picks a free port."),
    model: str | None = typer.Option(None, "--model", "-m", help="Defaults to the model named in the index."),
    cors_origin: list[str] = typer.Option([], "--cors-origin",
                                          help="An origin allowed to call the API from a browser (repeatable)."),
    max_upload_mb: float = typer.Option(ServeConfig.max_upload_bytes / 2**20, "--max-upload-mb", min=0.01,
                                        help="Largest image upload accepted."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: all cores)."),
    backend: str = typer.Option("auto", "--backend", help="Model runtime: auto | torch | onnx | onnx-int8 "
                                "(auto: the checkpoint's fresh ONNX export, as `stylesearch index --backend "
                                "onnx-int8` leaves one, else torch; docs/performance.md)."),
    warm_hybrid: bool = typer.Option(ServeConfig.warm_hybrid, "--warm-hybrid/--no-warm-hybrid",
                                     help="Build hybrid search's BM25 index in the background at start-up "
                                     "(off: built by the first mode=hybrid query; saves its memory if unused)."),
    watch: bool = typer.Option(ServeConfig.watch_index, "--watch/--no-watch",
                               help="Reload the index when `stylesearch index` rewrites it, without dropping a "
                               "request (SIGHUP also reloads)."),
) -> None:
    """Serve the search page and HTTP API for an index."""
    import uvicorn

    from stylesearch.search.batching import MAX_BATCH
    from stylesearch.search.searcher import open_searcher
    from stylesearch.serve.app import create_app
    from stylesearch.serve.server import LOOPBACK_NAMES, bind, is_loopback, server_config

    if threads:
        os.environ["STYLESEARCH_THREADS"] = str(threads)
    cfg = ServeConfig(host=host, port=port, cors_origins=tuple(cors_origin),
                      max_upload_bytes=int(max_upload_mb * 2**20), warm_hybrid=warm_hybrid,
                      watch_index=watch)
    if not is_loopback(host):
        err_console.print(f"[yellow]warning:[/yellow] listening on {host}, not loopback: anyone who can reach "
                          "this machine can use the API; put it behind a TLS proxy.", highlight=False)
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    console.print(f"loading the model and index from {index} ...", highlight=False)
    searcher = open_searcher(index, model=model, backend=backend, max_batch=MAX_BATCH)
    searcher.search("warm up", k=1)  # the first forward pass allocates; do it before the first user
    web = create_app(searcher, cfg, allowed_hosts=LOOPBACK_NAMES if host in LOOPBACK_NAMES else None)
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    console.print(f"[green]stylesearch is serving[/green] {len(searcher):,} products at "
                  f"[bold]http://{shown}:{bound_port}/[/bold]  (API docs at /docs; Ctrl-C stops)", highlight=False)
    watcher = getattr(web.state, "watcher", None)
    if watcher is not None:  # `stylesearch index --update` is picked up by itself; SIGHUP asks at once
        signal.signal(signal.SIGHUP, lambda *_: watcher.poke())
        console.print(f"watching {index} for rebuilds (or: kill -HUP {os.getpid()})", highlight=False)
    uvicorn.Server(server_config(web, cfg)).run(sockets=[sock])
