"""`stylesearch index` and `stylesearch search`: thin commands over the index and search stages."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from stylesearch.cli.base import app, console, err_console, friendly, print_json
from stylesearch.config import IndexConfig
from stylesearch.errors import QueryError, StylesearchError
from stylesearch.index.kinds import KINDS, with_kind
from stylesearch.search.filters import parse_filters
from stylesearch.search.modes import DEFAULT_MODE, check_mode
from stylesearch.search.modes import run as run_in_mode
from stylesearch.search.modes import search as search_in_mode

if TYPE_CHECKING:
    from stylesearch.search.searcher import Hit, Searcher

HELP_INTERACTIVE = """commands: :k N (results per query), :filter col=value (add; repeat for more), :filter (show),
:clear (drop filters), :mode clip|hybrid, :like ID, :image PATH, :help, :quit; anything else is a text query"""


@app.command("index")
@friendly
def index_command(
    catalog: Path = typer.Option(..., "--catalog", "-c", help="Processed catalogue directory (stylesearch prepare)."),
    out: Path = typer.Option(..., "--out", "-o", help="Index directory to write (replaced atomically)."),
    model: str = typer.Option("openai/clip-vit-base-patch32", "--model", "-m",
                              help="Checkpoint directory, Hub name, or 'tiny'."),
    update: bool = typer.Option(False, "--update", help="Reuse the vectors of unchanged images in --out."),
    kind: str = typer.Option("auto", "--kind", help=f"Index kind: {' | '.join(KINDS)} (auto: flat up to "
                             f"{IndexConfig().exact_max:,} products, IVF-PQ with exact re-scoring above)."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Images per model call."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    backend: str = typer.Option("torch", "--backend", help="Model runtime: torch | onnx | onnx-int8 "
                                "(ONNX Runtime, exported once and cached beside the checkpoint; docs/performance.md)."),
    ray: bool = typer.Option(False, "--ray", help="Embed with Ray Data over an actor pool (a local Ray instance "
                             "unless --ray-address); needs the 'distributed' extra."),
    ray_address: str | None = typer.Option(None, "--ray-address", metavar="ADDRESS",
                                           help="Ray cluster to join with --ray, e.g. auto or ray://head:10001."),
    ray_actors: int | None = typer.Option(None, "--ray-actors", min=1, help="Actors (default: one per GPU or CPU)."),
) -> None:
    """Embed every catalogue image into a search index."""
    cfg = with_kind(IndexConfig(), kind=kind, batch_size=batch_size)
    if ray or ray_address:  # distributed embedding: stylesearch.index.ray_build, same index format
        from stylesearch.index.ray_build import build_index_ray

        _, ray_report = build_index_ray(catalog, out, model=model, cfg=cfg, address=ray_address, actors=ray_actors,
                                         backend=backend, update=update)
        for why in ray_report.skipped.values():  # each reason names its product id
            err_console.print(f"[yellow]left out[/yellow] {why}", highlight=False)
        console.print(f"[green]index written[/green] to {out}: {ray_report.summary()}", highlight=False)
        return
    from stylesearch.index.store import build_index  # here, not at the top: --help must not load faiss

    _, report = build_index(catalog, out, model=model, cfg=cfg, update=update, progress=not quiet, backend=backend)
    console.print(f"[green]index written[/green] to {out}: {report.summary()}", highlight=False)


@app.command("search")
@friendly
def search_command(
    query: str | None = typer.Argument(None, help="Words to search for; leave out for an interactive prompt. "
                                       "With --like, an edit: --like 15970 \"in red\"."),
    index: Path = typer.Option(..., "--index", "-i", help="Index directory (stylesearch index)."),
    k: int = typer.Option(10, "-k", "--top", min=1, max=1000, help="Number of results."),
    filters: list[str] = typer.Option([], "--filter", "-f",
                                      help="column=value, e.g. gender=Women, baseColour=Black,Blue, year=2011-2013."),
    image: Path | None = typer.Option(None, "--image", help="Search by a picture instead of words."),
    like: str | None = typer.Option(None, "--like", help="Products similar to this catalogue id."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    model: str | None = typer.Option(None, "--model", "-m", help="Defaults to the model named in the index."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many results (paging)."),
    mode: str | None = typer.Option(None, "--mode", help="hybrid (CLIP fused with BM25 and query attributes) | "
                                    f"clip (CLIP alone) [text queries: {DEFAULT_MODE}; --image and --like: clip]. "
                                    "See docs/quality.md."),
    exact: bool = typer.Option(False, "--exact", help="Search for the words as typed; by default a word the "
                               "catalogue does not use is corrected to a close one it does ('drss' -> 'dress')."),
    backend: str = typer.Option("auto", "--backend", help="Model runtime: auto | torch | onnx | onnx-int8 "
                                "(auto: the checkpoint's fresh ONNX export, as `stylesearch index --backend "
                                "onnx-int8` leaves one, else torch; docs/performance.md)."),
) -> None:
    """Search an index by words, by a picture (--image) or by a catalogue item (--like)."""
    edit = query if like is not None else None  # "like this, but in red" (stylesearch.curate.compose)
    chosen = [x for x in (None if edit else query, image, like) if x is not None]
    if len(chosen) > 1:
        raise QueryError("give one of: a query, --image or --like (with --like, words are an edit: \"in red\")")
    if mode == "hybrid" and (image is not None or like is not None):
        raise QueryError("--mode hybrid matches words, so it applies to text queries, not --image or --like")
    given, mode = mode, check_mode(mode or DEFAULT_MODE)
    wanted = parse_filters(filters)
    from stylesearch.search.searcher import open_searcher  # here, not at the top: --help must not load torch

    searcher = open_searcher(index, model=model, backend=backend)
    if not chosen:
        _interactive(searcher, k, wanted, mode, chosen_mode=given is not None)
        return
    corrected = None
    if image is not None:
        hits = searcher.search_image(image, k, wanted, offset)
    elif like is not None and edit is not None:
        from stylesearch.curate.compose import similar_edited

        hits = similar_edited(searcher, like, edit, k, wanted, offset)
    elif like is not None:
        hits = searcher.similar(like, k, wanted, offset)
    else:
        answer = run_in_mode(searcher, str(query), k, wanted, offset, mode, correct=not exact)
        hits, corrected = answer.hits, answer.corrected
    title = f"like {like}, {edit}" if edit else str(query if query is not None else image or f"like {like}")
    _show(hits, searcher, as_json, title=title, filters=wanted, k=k, corrected=corrected)


def _show(hits: list[Hit], searcher: Searcher, as_json: bool, *, title: str, filters: dict[str, Any], k: int,
          corrected: str | None = None) -> None:
    if as_json:
        payload: dict[str, Any] = {"query": title, "k": k, "filters": filters, "hits": [h.to_dict() for h in hits]}
        if corrected:
            payload["corrected"] = corrected
        if searcher.last_notice:
            payload["notice"] = searcher.last_notice
        print_json(payload)
        return
    if corrected:
        err_console.print(f"showing results for “{corrected}” (--exact searches for what you typed)", highlight=False)
    if searcher.last_notice:
        err_console.print(f"[yellow]notice:[/yellow] {searcher.last_notice}", highlight=False)
    console.print(hits_table(hits, title=title))


def hits_table(hits: list[Hit], *, title: str = "") -> Table:
    """Rank, id, title, colour, article type, gender and CLIP score (100 x cosine)."""
    table = Table(title=title or None, show_lines=False)
    for name, justify in (("rank", "right"), ("id", "left"), ("title", "left"), ("colour", "left"),
                          ("article type", "left"), ("gender", "left"), ("score", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for hit in hits:
        attrs = hit.attributes
        table.add_row(str(hit.rank), hit.id, hit.title, str(attrs.get("baseColour") or ""),
                      str(attrs.get("articleType") or ""), str(attrs.get("gender") or ""), f"{hit.score:.2f}")
    if not hits:
        table.caption = "no products match"
    return table


# --- interactive prompt --------------------------------------------------------------------------


def _reader() -> Callable[[str], str]:
    """prompt_toolkit with a history file when on a terminal and installed, else input() (readline)."""
    history = Path(os.environ.get("STYLESEARCH_HISTORY", Path.home() / ".cache" / "stylesearch" / "history"))
    if os.isatty(0) and os.isatty(1):
        try:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import FileHistory

            history.parent.mkdir(parents=True, exist_ok=True)
            return PromptSession(history=FileHistory(str(history))).prompt
        except ImportError:
            try:
                import readline

                history.parent.mkdir(parents=True, exist_ok=True)
                if history.is_file():
                    readline.read_history_file(history)
                import atexit

                atexit.register(readline.write_history_file, history)
            except (ImportError, OSError):
                pass
    return input


def _interactive(searcher: Searcher, k: int, filters: dict[str, Any], mode: str = DEFAULT_MODE,
                 chosen_mode: bool = False) -> None:
    """The prompt; `chosen_mode`: the user asked for `mode` (a flag or :mode), not just the default."""
    read = _reader()
    console.print(f"searching {len(searcher)} products; {HELP_INTERACTIVE}", highlight=False)
    while True:
        try:
            state = ", ".join([str(k), mode, *([_describe(filters)] if filters else [])])
            line = read(f"search ({state})> ").strip()
        except EOFError:
            return
        if not line:
            continue
        try:
            command, _, rest = line.partition(" ")
            rest = rest.strip()
            if command in (":q", ":quit", ":exit"):
                return
            if command == ":help":
                console.print(HELP_INTERACTIVE, highlight=False)
            elif command == ":k":
                if not rest.isdigit() or int(rest) < 1:
                    raise QueryError(":k takes a whole number of results, e.g. :k 10")
                k = int(rest)
            elif command == ":filter":
                if rest:
                    added = parse_filters([rest])
                    searcher.count(added)  # checks the column and value now, not at the next query
                    filters = {**filters, **added}
                console.print(f"filters: {_describe(filters) or 'none'} ({searcher.count(filters)} products)",
                              highlight=False)
            elif command == ":mode":
                mode = check_mode(rest) if rest else mode
                chosen_mode = chosen_mode or bool(rest)
                console.print(f"mode: {mode}", highlight=False)
            elif command == ":clear":
                filters = {}
                console.print("filters cleared", highlight=False)
            elif command in (":like", ":image"):
                if chosen_mode and mode != "clip":  # said once the user picked a word mode, not for the default
                    console.print(f"(mode {mode} applies to text queries; {command} searches by CLIP)", highlight=False)
                find = searcher.similar if command == ":like" else searcher.search_image
                hits = find(rest, k, filters)
                _show(hits, searcher, False, title=f"like {rest}" if command == ":like" else rest, filters=filters, k=k)
            elif command.startswith(":"):
                raise QueryError(f"unknown command {command}; {HELP_INTERACTIVE}")
            else:
                _show(search_in_mode(searcher, line, k, filters, mode=mode), searcher, False, title=line,
                      filters=filters, k=k)
        except StylesearchError as err:
            err_console.print(f"[red]error:[/red] {err}", highlight=False)


def _describe(filters: dict[str, Any]) -> str:
    return ", ".join(f"{c}={v if isinstance(v, str) else ','.join(map(str, v))}" for c, v in filters.items())
