"""Atomic writes and content hashes: nothing a user made is lost on a crash."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stylesearch.errors import IntegrityError, ManifestMismatchError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it replaces `path` (for writers that need a name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a fresh temp directory; on success it takes the place of `path` in one rename.

    The old directory is moved aside first and removed only after the new one is in place, so a
    crash at any point leaves either the old or the new directory complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_dir(tmp)
        if path.exists() and _exchange(tmp, path):
            shutil.rmtree(tmp)  # it holds the old directory now
        else:
            old = path.with_name(f"{path.name}.old-{os.getpid()}")
            if path.exists():
                os.replace(path, old)
            os.replace(tmp, path)
            if old.exists():
                shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported,
    so there is never a moment when `b` is missing."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _fsync_dir(path: Path) -> None:
    for child in path.rglob("*"):
        if child.is_file():
            with open(child, "rb") as fh:
                os.fsync(fh.fileno())


SEAL = "manifest_sha256"


def read_stage_manifest(directory: Path, name: str, *, kind: str, version: int, what: str, fix: str) -> dict:
    """A stage's manifest, refused with a typed error when missing, unreadable, of another kind or format.

    `what` names the stage's output ("a search index"); `fix` says how to make a good one.
    """
    import json

    file = Path(directory) / name
    if not file.is_file():
        raise ManifestMismatchError(f"{directory}: not {what} (no {name}); {fix}")
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise IntegrityError(f"{file}: corrupt manifest ({err})") from err
    if manifest.get("kind") != kind:
        raise ManifestMismatchError(f"{directory}: manifest kind is {manifest.get('kind')!r}, not {what}")
    if manifest.get("format_version") != version:
        raise ManifestMismatchError(f"{directory}: format {manifest.get('format_version')}, expected {version}; {fix}")
    return manifest


def manifest_hash(manifest: dict) -> str:
    """A manifest's hash of itself (every key but the seal): catches accidental or careless edits, not a signature."""
    import json

    body = {k: v for k, v in manifest.items() if k != SEAL}
    return sha256_bytes(json.dumps(body, sort_keys=True, default=str).encode())


def sealed(manifest: dict) -> dict:
    """`manifest` plus its own hash under `SEAL`."""
    return {**manifest, SEAL: manifest_hash(manifest)}


def seal_broken(manifest: dict) -> bool:
    """True when a sealed manifest was edited after it was written (an unsealed, older one is not checked)."""
    return SEAL in manifest and manifest_hash(manifest) != manifest[SEAL]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# Hashes of files already read, keyed by what `stat` says of them. Every load verifies its files (a
# 600 MB checkpoint, a 100 MB image table), and re-reading them cost a one-shot query most of a
# second. A file keeps its entry only while its device, inode, size, mtime and ctime are all unchanged:
# any write changes them, and ctime cannot be set back from user space.
HASH_CACHE_ENTRIES = 2000


def _hash_cache_file() -> Path:
    base = os.environ.get("STYLESEARCH_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stylesearch" / "sha256.json"


def _stamp(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def verified_sha256(path: Path) -> str:
    """`sha256_file(path)`, remembered across runs while the file is untouched (see HASH_CACHE_ENTRIES)."""
    import json

    path = Path(path).resolve()
    key = f"{path}|{_stamp(path)}"
    cache_file = _hash_cache_file()
    cache = _read_hash_cache(cache_file)
    if isinstance(cache.get(key), str):
        return cache[key]
    digest = sha256_file(path)
    cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")}  # this file's older stamps
    cache[key] = digest
    with contextlib.suppress(OSError):  # a read-only home only costs the next run the same hashing
        atomic_write_text(cache_file, json.dumps(dict(list(cache.items())[-HASH_CACHE_ENTRIES:])))
    return digest


# The hash cache as last parsed, with the stamp of the file it came from. A one-shot query verifies a
# dozen files, and parsing the whole cache (hundreds of kB) for each was ~2 ms apiece; another process's
# write changes the stamp, so what it added is read again.
_parsed_hash_cache: tuple[str, str, dict[str, str]] | None = None


def _read_hash_cache(cache_file: Path) -> dict[str, str]:
    import json

    global _parsed_hash_cache
    try:
        stamp = _stamp(cache_file)
    except OSError:
        return {}
    memo = _parsed_hash_cache
    if memo is not None and memo[:2] == (str(cache_file), stamp):
        return memo[2]
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    cache = cache if isinstance(cache, dict) else {}
    _parsed_hash_cache = (str(cache_file), stamp, cache)  # callers copy before changing it
    return cache


def checkpoint_hash(name: str | Path, known: dict[str, str] | None = None) -> str | None:
    """One hash over a checkpoint directory's *.safetensors files; None for a Hub name or a preset.

    `known` (file name -> sha256, as checkpoint.json records) spares re-reading files already hashed.
    """
    path = Path(name)
    weights = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if not weights:
        return None  # a Hub name or the tiny preset: the fingerprint identifies the weights
    known = known or {}
    return sha256_bytes("".join(known.get(w.name) or verified_sha256(w) for w in weights).encode())
