"""ORT's optimised graph of an exported tower, saved beside it once so that later sessions skip optimising.

Every ORT session start rewrites the graph (fusing attention, layer norms and int8 MatMuls) and copies the
weights out of the protobuf. The first session for a file saves the rewritten graph with its weights in a
file of their own; later sessions load that with optimisation off, and ORT memory-maps the weights instead
of copying them. For ViT-B/32's int8 text tower a process's first session took 0.37 s before and 0.11 s
after (one of two cores busy); saving costs the first run ~0.4 s more, once.

ORT warns that a graph saved at its highest level may hold kernels chosen for this CPU, so the saved graph
is keyed by the source file's sha256, the ORT version, the optimisation level and the CPU's model and
flags: a changed ONNX file, an upgraded ORT or a copy of the folder on another machine makes a new one,
and the old one is removed. Layout, beside the export:

  optimised/<tower>-<key>/  model.onnx  model.onnx.data  optimised.json (the key's parts, both files' sha256)

Each folder is written whole (`atomic_dir`) and its files are checked against optimised.json on every
load (hashes remembered by `verified_sha256`), so a damaged one is rebuilt, never used. Saving is best
effort: a read-only export folder only costs later runs the optimisation.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import platform
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stylesearch.common.files import atomic_dir, sha256_bytes, sha256_file, verified_sha256

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FOLDER, MODEL, WEIGHTS, RECORD = "optimised", "model.onnx", "model.onnx.data", "optimised.json"
PROVIDERS = ["CPUExecutionProvider"]  # the key assumes the CPU provider: a GPU graph would need its own
# Initialisers at least this big go to the weights file, which ORT memory-maps; small ones stay inline.
EXTERNAL_MIN_BYTES = 1024
ORT_ERROR_ONLY = 3  # ORT's log severity: errors, not the "hardware-specific model" warning when saving


@functools.cache
def cpu_signature() -> str:
    """The CPU as ORT's kernel choice sees it: architecture, model name and instruction-set flags."""
    fields = {"machine": platform.machine()}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:  # Linux; elsewhere the architecture must do
        for line in fh:
            if not line.strip():
                break  # the first CPU's block: the cores of one machine share an instruction set
            name, _, value = line.partition(":")
            if name.strip() in ("model name", "flags", "Features"):
                fields[name.strip()] = " ".join(value.split())
    return sha256_bytes(json.dumps(fields, sort_keys=True).encode())[:16]


def graph_key(source: Path, level: Any) -> dict[str, Any]:
    """What a saved graph of `source` at ORT optimisation `level` depends on; it is used only when all of it matches."""
    import onnxruntime as ort

    return {"format_version": FORMAT_VERSION, "source_sha256": verified_sha256(source),
            "onnxruntime": ort.__version__, "level": int(level), "providers": PROVIDERS, "cpu": cpu_signature()}


def saved_folder(source: Path, key: dict[str, Any]) -> Path:
    """Where the optimised graph of `source` under `key` lives: `<export>/optimised/<tower>-<key hash>`."""
    digest = sha256_bytes(json.dumps(key, sort_keys=True).encode())[:16]
    return source.parent / FOLDER / f"{_tower(source)}-{digest}"


def optimised_session(source: Path, options: Callable[[], Any]) -> Any:
    """An ORT session of `source` on the CPU, from its saved optimised graph when a fresh one exists.

    `options()` makes the session options (called once or twice; each session needs its own). Without
    a fresh saved graph, this session optimises `source` as usual and saves the result for the next run.
    """
    import onnxruntime as ort

    source = Path(source)
    first = options()
    level = first.graph_optimization_level
    if level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL:
        return ort.InferenceSession(str(source), first, providers=PROVIDERS)  # nothing to save
    key = graph_key(source, level)
    folder = saved_folder(source, key)
    if _fresh(folder, key):
        loading = options()
        # Already optimised for this CPU and ORT: optimising again would only redo the same rewrite.
        loading.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(folder / MODEL), loading, providers=PROVIDERS)
        except Exception as err:  # a saved graph ORT cannot load is made again, never fatal
            log.warning("%s: saved optimised graph did not load (%s); optimising %s again", folder, err, source)
    try:
        return _optimise_and_save(source, key, folder, first)
    except OSError as err:  # a read-only or full disk: serve now, optimise again next time
        log.info("cannot save the optimised graph of %s in %s (%s)", source, folder, err)
    except Exception as err:  # ORT could not save it (a source ORT cannot load fails again just below)
        log.warning("could not save the optimised graph of %s (%s); it is optimised on every load", source, err)
    return ort.InferenceSession(str(source), options(), providers=PROVIDERS)


def _optimise_and_save(source: Path, key: dict[str, Any], folder: Path, options: Any) -> Any:
    import onnxruntime as ort

    with atomic_dir(folder) as tmp:
        options.optimized_model_filepath = str(tmp / MODEL)
        # A bare file name: ORT records it relative to the model, so the folder can be renamed into place.
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", WEIGHTS)
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                         str(EXTERNAL_MIN_BYTES))
        options.log_severity_level = ORT_ERROR_ONLY  # the key already ties the graph to this CPU and ORT
        session = ort.InferenceSession(str(source), options, providers=PROVIDERS)
        if not (tmp / MODEL).is_file():
            raise OSError(f"ORT wrote no optimised graph to {tmp / MODEL}")
        files = {name: sha256_file(tmp / name) for name in (MODEL, WEIGHTS) if (tmp / name).is_file()}
        (tmp / RECORD).write_text(json.dumps({"source": source.name, "key": key, "files": files}, indent=2))
    for name in files:  # remember the hashes at the final paths: the next load only stats the files
        verified_sha256(folder / name)
    _remove_other_versions(source, folder)
    return session


def _fresh(folder: Path, key: dict[str, Any]) -> bool:
    """True when `folder` holds a complete saved graph made under `key` whose files are as written."""
    try:
        record = json.loads((folder / RECORD).read_text())
        files = record["files"]
        return (record.get("key") == key and MODEL in files
                and all(verified_sha256(folder / name) == digest for name, digest in files.items()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _remove_other_versions(source: Path, keep: Path) -> None:
    """Drop saved graphs of this tower under other keys (an older source file, ORT or CPU); best effort."""
    prefix = f"{_tower(source)}-"
    for other in keep.parent.iterdir():
        # Another process's `.tmp-<pid>` or `.old-<pid>` folder is its own to finish or remove.
        if other != keep and other.name.startswith(prefix) and "." not in other.name[len(prefix):]:
            shutil.rmtree(other, ignore_errors=True)


def _tower(source: Path) -> str:
    return source.name.removesuffix(".onnx")  # "text.int8.onnx" -> "text.int8"
