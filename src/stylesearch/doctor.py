"""Check a catalogue, a checkpoint and an index for consistency, and say how to fix what is wrong.

`diagnose(catalog=..., checkpoint=..., index=...)` returns `Finding`s; it never prints and never
exits (that is `stylesearch doctor`'s job). Each stage is checked on its own (files present, hashes,
counts, images decodable) and then against the others: the index must have been built by this
checkpoint (weights fingerprint and file hash) from this catalogue (hash, ids, row count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from stylesearch.common.files import checkpoint_hash, sha256_bytes
from stylesearch.data.catalog import read_catalog
from stylesearch.data.images import decode_image
from stylesearch.data.prepare import load_processed
from stylesearch.errors import StylesearchError
from stylesearch.index.store import IMAGES, EmbeddingIndex
from stylesearch.model.checkpoint import MANIFEST, verify_checkpoint
from stylesearch.model.clip import load_model

Level = Literal["error", "warning", "ok"]
MAX_LISTED = 5  # ids named in one finding; the count says how many more


@dataclass(frozen=True)
class Finding:
    """One thing checked: `error` (unusable as is), `warning` (works, but look) or `ok`."""
    level: Level
    what: str
    fix: str = ""


@dataclass
class _Facts:
    """What the single-stage checks learned, for the cross-checks."""
    catalog_sha: str | None = None
    catalog_ids: list[str] | None = None
    fingerprint: str | None = None
    weights_sha: str | None = None
    checkpoint: Path | None = None
    index_manifest: dict[str, Any] = field(default_factory=dict)
    index_ids: list[str] | None = None


def diagnose(catalog: Path | str | None = None, checkpoint: Path | str | None = None,
             index: Path | str | None = None, *, images: bool = True) -> list[Finding]:
    """Every finding about the given directories; `images=False` skips decoding each picture."""
    findings: list[Finding] = []
    facts = _Facts()
    if catalog is not None:
        findings += check_catalog(Path(catalog), facts, images=images)
    if checkpoint is not None:
        findings += check_checkpoint(Path(checkpoint), facts)
    if index is not None:
        findings += check_index(Path(index), facts)
        findings += cross_check(facts, catalog_given=catalog is not None, checkpoint_given=checkpoint is not None)
    return findings


def has_errors(findings: list[Finding]) -> bool:
    return any(f.level == "error" for f in findings)


def interrupted_writes(path: Path, what: str) -> list[Finding]:
    """What a killed atomic directory write leaves beside `path` (`<name>.tmp-<pid>`, `<name>.old-<pid>`)."""
    out = []
    olds = sorted(path.parent.glob(f"{path.name}.old-*"))
    if not path.exists() and olds:
        # Killed between moving the old directory aside and moving the new one in: the old one is whole.
        out.append(Finding("error", f"{what} {path} is missing, but its previous copy survives as {olds[-1]} (a write "
                                    "was killed between its two renames)", f"restore it: mv {olds[-1]} {path}"))
        olds = olds[:-1]
    for leftover in sorted(path.parent.glob(f"{path.name}.tmp-*")) + olds:
        out.append(Finding("warning", f"{what}: {leftover} was left by an interrupted write; "
                                      f"{path} itself is whole", f"delete it: rm -r {leftover}"))
    return out


# --- catalogue -----------------------------------------------------------------------------------


def check_catalog(path: Path, facts: _Facts | None = None, *, images: bool = True) -> list[Finding]:
    """A processed catalogue (manifest.json + catalog.parquet) or a raw one (Kaggle folder, CSV, parquet)."""
    facts = facts or _Facts()
    out = interrupted_writes(path, "catalogue")
    if not path.exists():
        return out or [Finding("error", f"catalogue {path}: no such file or directory",
                               "pass the directory written by `stylesearch prepare`, or a raw catalogue")]
    if path.is_dir() and (path / "manifest.json").is_file():
        return out + _check_processed(path, facts, images)
    return out + _check_raw(path, facts, images)


def _check_processed(path: Path, facts: _Facts, images: bool) -> list[Finding]:
    redo = f"re-run `stylesearch prepare --out {path}` from the raw catalogue"
    try:
        catalog = load_processed(path, verify=True)
    except StylesearchError as err:
        return [Finding("error", f"catalogue: {err}", redo)]
    frame, manifest = catalog.frame, catalog.manifest
    out = [Finding("ok", f"catalogue {path}: {len(frame)} products, catalog.parquet matches its hash")]
    facts.catalog_sha = manifest.get("catalog_sha256")
    facts.catalog_ids = frame["id"].astype(str).tolist()
    if manifest.get("count") != len(frame):
        out.append(Finding("error", f"catalogue: manifest.json says {manifest.get('count')} products, "
                                    f"catalog.parquet holds {len(frame)}", redo))
    if "split" in frame.columns:
        sizes = {s: int((frame["split"] == s).sum()) for s in manifest.get("split_sizes", {})}
        if sizes != manifest.get("split_sizes", sizes):
            out.append(Finding("error", f"catalogue: split sizes {sizes} differ from the manifest's "
                                        f"{manifest.get('split_sizes')}", redo))
    dup = frame["id"].astype(str)[frame["id"].astype(str).duplicated()].unique().tolist()
    if dup:
        out.append(Finding("error", f"catalogue: {len(dup)} duplicate id(s): {_some(dup)}", redo))
    if "image" in frame.columns:
        out += _check_image_blobs(frame, images, redo)
    return out


def _check_image_blobs(frame: pd.DataFrame, decode: bool, redo: str) -> list[Finding]:
    missing, wrong_hash, undecodable = [], [], []
    for pid, data, sha in zip(frame["id"].astype(str), frame["image"],
                              frame.get("image_sha256", pd.Series([None] * len(frame))), strict=True):
        if data is None or len(data) == 0:
            missing.append(pid)
            continue
        if sha is not None and sha256_bytes(bytes(data)) != sha:
            wrong_hash.append(pid)
        if decode:
            try:
                decode_image(bytes(data), where=f"id {pid}")
            except StylesearchError:
                undecodable.append(pid)
    out = []
    for ids, what in ((missing, "no image bytes"), (wrong_hash, "image bytes that do not match image_sha256"),
                      (undecodable, "images that do not decode")):
        if ids:
            out.append(Finding("error", f"catalogue: {len(ids)} product(s) with {what}: {_some(ids)}", redo))
    if not (missing or wrong_hash or undecodable):
        out.append(Finding("ok", f"catalogue: every image present{' and decodable' if decode else ''}"))
    return out


def _check_raw(path: Path, facts: _Facts, images: bool) -> list[Finding]:
    try:
        catalog = read_catalog(path)
    except StylesearchError as err:
        return [Finding("error", f"catalogue: {err}", "fix the file, or pass the flags the message names")]
    frame = catalog.frame
    out = [Finding("ok", f"raw catalogue {path}: {len(frame)} rows read")]
    if frame.empty:
        out.append(Finding("error", f"catalogue {path}: no products", "add products; an empty index serves nothing"))
    for issue in catalog.dropped:
        out.append(Finding("warning", f"catalogue: {issue.where}: {issue.reason}", "fix the row or accept its loss"))
    missing, undecodable = [], []
    for pid, blob, file in zip(frame["id"].astype(str), frame["image"], frame["image_path"], strict=True):
        if blob is None and (not file or not Path(file).is_file()):
            missing.append(f"{pid} ({file})" if file else pid)
            continue
        if images:
            try:
                decode_image(blob if blob is not None else Path(file).read_bytes(), where=f"id {pid}")
            except StylesearchError:
                undecodable.append(f"{pid} ({file})" if file else pid)
    if missing:
        out.append(Finding("warning", f"catalogue: {len(missing)} image file(s) missing: {_some(missing)}",
                           "restore the files; `stylesearch prepare` drops these products"))
    if undecodable:
        out.append(Finding("warning", f"catalogue: {len(undecodable)} image(s) that do not decode: "
                                      f"{_some(undecodable)}", "replace the files; `stylesearch prepare` drops these"))
    dup = frame["id"][frame["id"].duplicated()].unique().tolist()
    if dup:
        out.append(Finding("warning", f"catalogue: {len(dup)} duplicate id(s): {_some(dup)}",
                           "give each product its own id; `stylesearch prepare` keeps the first"))
    if not (missing or undecodable):
        out.append(Finding("ok", f"catalogue: every image file present{' and decodable' if images else ''}"))
    return out


# --- checkpoint ----------------------------------------------------------------------------------


def check_checkpoint(path: Path, facts: _Facts | None = None) -> list[Finding]:
    """A checkpoint directory (config.json, model.safetensors, checkpoint.json), or a training run's
    directory holding `best/` and `last/` (both are checked; `best` is the one cross-checked)."""
    facts = facts or _Facts()
    if path.is_dir() and not (path / "config.json").is_file() and \
            any((path / name).is_dir() or list(path.glob(f"{name}.old-*")) for name in ("best", "last")):
        out = check_checkpoint(path / "best", facts)
        if (path / "last").is_dir() or list(path.glob("last.*-*")):
            out += check_checkpoint(path / "last", _Facts())
        return out

    retrain = "restore the directory from a backup, or re-run `stylesearch train` (--resume continues from last/)"
    leftovers = interrupted_writes(path, "checkpoint")
    if leftovers and not path.is_dir():
        return leftovers
    if not path.is_dir():
        return [Finding("error", f"checkpoint {path}: no such directory",
                        "pass a directory written by `stylesearch train` (e.g. runs/train/best)")]
    if not (path / MANIFEST).is_file():
        out = [Finding("warning", f"checkpoint {path}: no {MANIFEST}, so there are no hashes to check the files "
                                  "against", "checkpoints written by `stylesearch train` carry one")]
        manifest: dict[str, Any] = {}
    else:
        try:
            manifest = verify_checkpoint(path)
        except StylesearchError as err:
            return [Finding("error", f"checkpoint: {err}", retrain)]
        out = [Finding("ok", f"checkpoint {path}: {len(manifest.get('files', {}))} files match {MANIFEST}")]
    out = leftovers + out
    try:
        loaded = load_model(str(path))
    except StylesearchError as err:
        return [*out, Finding("error", f"checkpoint: {err}", retrain)]
    fingerprint = loaded.fingerprint
    if manifest.get("fingerprint") and manifest["fingerprint"] != fingerprint:
        out.append(Finding("error", f"checkpoint {path}: weights fingerprint {fingerprint} differs from the "
                                    f"{manifest['fingerprint']} recorded in {MANIFEST}", retrain))
    else:
        out.append(Finding("ok", f"checkpoint: weights load through safetensors (fingerprint {fingerprint})"))
    facts.fingerprint, facts.checkpoint = fingerprint, path
    facts.weights_sha = checkpoint_hash(path, known=manifest.get("files"))  # verified above: no re-reading
    return out


# --- index ---------------------------------------------------------------------------------------


def check_index(path: Path, facts: _Facts | None = None) -> list[Finding]:
    facts = facts or _Facts()
    rebuild = f"rebuild it: `stylesearch index --catalog CATALOG --model MODEL --out {path}`"
    out = interrupted_writes(path, "index")
    if out and not path.exists():
        return out
    if (work := path.with_name(f"{path.name}.work")).is_dir():
        out.append(Finding("warning", f"index: {work} holds embedding chunks of an interrupted build",
                           "re-run the same `stylesearch index` command to resume it, or delete the folder"))
    try:
        index = EmbeddingIndex.load(path, verify=True)
    except StylesearchError as err:
        return [*out, Finding("error", f"index: {err}", rebuild)]
    manifest = index.manifest
    facts.index_manifest = manifest
    facts.index_ids = index.products["id"].astype(str).tolist()
    out.append(Finding("ok", f"index {path}: {len(index)} vectors ({index.kind}, {index.dim}-d), products and "
                             "files match manifest.json"))
    try:
        image_ids = pd.read_parquet(path / IMAGES, columns=["id"])["id"].astype(str).tolist()
    except (OSError, ValueError, KeyError) as err:
        return [*out, Finding("error", f"index: {path / IMAGES} unreadable ({err})", rebuild)]
    if image_ids != facts.index_ids:
        out.append(Finding("error", f"index: {IMAGES} rows do not follow products.parquet "
                                    f"({len(image_ids)} vs {len(facts.index_ids)})", rebuild))
    dup = pd.Series(facts.index_ids)[pd.Series(facts.index_ids).duplicated()].unique().tolist()
    if dup:
        out.append(Finding("error", f"index: {len(dup)} duplicate id(s): {_some(dup)}", rebuild))
    return out


# --- across stages -------------------------------------------------------------------------------


def cross_check(facts: _Facts, *, catalog_given: bool, checkpoint_given: bool) -> list[Finding]:
    out: list[Finding] = []
    manifest = facts.index_manifest
    if not manifest:
        return out
    model = manifest.get("model", {})
    if checkpoint_given and facts.fingerprint is not None:
        fix = f"rebuild the index with this model: `stylesearch index --model {facts.checkpoint} ...`, or pass " \
              f"the checkpoint it was built with ({model.get('name')})"
        if model.get("fingerprint") != facts.fingerprint:
            out.append(Finding("error", f"index was built by model {model.get('name')!r} (fingerprint "
                                        f"{model.get('fingerprint')}), not by the checkpoint {facts.checkpoint} "
                                        f"(fingerprint {facts.fingerprint})", fix))
        elif model.get("checkpoint_sha256") and facts.weights_sha and model["checkpoint_sha256"] != facts.weights_sha:
            out.append(Finding("error", "index manifest's checkpoint_sha256 differs from the checkpoint's weights "
                                        "file although the fingerprints agree", fix))
        else:
            out.append(Finding("ok", f"index was built by this checkpoint (fingerprint {facts.fingerprint})"))
    elif not checkpoint_given:
        name = str(model.get("name", ""))
        if _looks_like_local_path(name) and not Path(name).exists():
            out.append(Finding("warning", f"index names model {name!r}, which is not on this machine",
                               "pass --model to `stylesearch search`/`serve` with that checkpoint, or rebuild "
                               "the index; `stylesearch doctor --checkpoint DIR` checks the pair"))
    if catalog_given and facts.catalog_ids is not None and facts.index_ids is not None:
        update = "bring the index up to date: `stylesearch index --update --catalog CATALOG --out INDEX --model MODEL`"
        catalog_ids, index_ids = set(facts.catalog_ids), set(facts.index_ids)
        not_indexed = sorted(catalog_ids - index_ids)
        not_in_catalog = sorted(index_ids - catalog_ids)
        if not_indexed:
            out.append(Finding("error", f"{len(not_indexed)} catalogue product(s) are not in the index: "
                                        f"{_some(not_indexed)}", update))
        if not_in_catalog:
            out.append(Finding("error", f"{len(not_in_catalog)} indexed product(s) are not in the catalogue: "
                                        f"{_some(not_in_catalog)}", update))
        catalog_sha = manifest.get("catalog", {}).get("sha256")
        if not (not_indexed or not_in_catalog):
            if facts.catalog_sha and catalog_sha != facts.catalog_sha:
                out.append(Finding("warning", "index and catalogue hold the same ids, but the index was built from "
                                              "another version of the catalogue (titles or images may differ)",
                                   update))
            else:
                out.append(Finding("ok", f"index rows match the catalogue ({len(index_ids)} products)"))
    return out


def _looks_like_local_path(name: str) -> bool:
    # Hub names are "owner/model"; a path has more parts, or starts at the root or the current directory.
    return name.startswith(("/", ".", "~")) or name.count("/") >= 2


def _some(items: list[str]) -> str:
    shown = ", ".join(str(i) for i in items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def as_dicts(findings: list[Finding]) -> list[dict[str, str]]:
    return [{"level": f.level, "what": f.what, "fix": f.fix} for f in findings]


__all__ = ["Finding", "as_dicts", "check_catalog", "check_checkpoint", "check_index", "cross_check", "diagnose",
           "has_errors"]
