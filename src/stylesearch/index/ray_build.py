"""Embed a processed catalogue with Ray Data: `map_batches` over an actor pool, one encoder per actor.

`stylesearch index --ray [ADDRESS]` runs this. The catalogue parquet is read as a Ray dataset, each
actor loads the model once and embeds whole batches (one GPU per actor when the cluster has GPUs), and
the vectors come back in catalogue row order. `EmbeddingIndex.from_vectors` then writes the index
directory exactly as the single-process `EmbeddingIndex.build` does, so search cannot tell them apart.

An image that fails to decode (or that the model cannot take) is marked in an `error` column instead of
raising, so the rest of its batch is kept; the product is left out of the index and reported.
Needs the `distributed` extra: `pip install 'stylesearch[distributed]'`.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stylesearch.config import IndexConfig
from stylesearch.data.images import decode_image
from stylesearch.data.prepare import ProcessedCatalog, load_processed
from stylesearch.errors import StylesearchError
from stylesearch.index.store import EmbeddingIndex
from stylesearch.model.backends import load_encoder
from stylesearch.model.encoder import Encoder

EncoderSpec = str | Callable[[], Encoder]  # a model name for `load_encoder`, or a picklable factory (tests)


@dataclass
class RayEmbedding:
    """Vectors in catalogue row order; rows whose id is in `errors` hold zeros and must not be indexed."""
    ids: list[str]
    vectors: np.ndarray
    errors: dict[str, str] = field(default_factory=dict)  # id -> why its image could not be embedded


@dataclass
class RayIndexReport:
    count: int
    kind: str
    actors: int
    seconds: float
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        skipped = f"; left out {len(self.skipped)} bad image(s)" if self.skipped else ""
        return (f"{self.count} products ({self.kind}) embedded by {self.actors} Ray actor(s) "
                f"in {self.seconds:.1f} s{skipped}")


class ImageEmbedder:
    """The Ray Data UDF: built once per actor (loading the model once), then called per batch."""
    def __init__(self, encoder: EncoderSpec, batch_size: int):
        if isinstance(encoder, str):

            self.encoder: Encoder = load_encoder(encoder, batch_size=batch_size)
        else:
            self.encoder = encoder()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = [str(i) for i in batch["id"]]
        errors = [""] * len(ids)
        images: dict[int, Any] = {}
        for row, (id_, data) in enumerate(zip(ids, batch["image"], strict=True)):
            try:  # decode item by item: one bad file marks its own row, not the batch
                images[row] = decode_image(bytes(data) if data is not None else b"", where=f"id {id_}")
            except Exception as err:  # noqa: BLE001 - whatever a worker raises on one image is reported, not fatal
                errors[row] = str(err)
        vectors = np.zeros((len(ids), self.encoder.dim), np.float32)
        rows = list(images)
        if rows:
            try:
                vectors[rows] = self.encoder.encode_images([images[r] for r in rows])
            except Exception:  # noqa: BLE001 - one image the model chokes on: retry one by one to find it
                for r in rows:
                    try:
                        vectors[r] = self.encoder.encode_images([images[r]])[0]
                    except Exception as err:  # noqa: BLE001
                        errors[r] = f"id {ids[r]}: the model could not embed it ({type(err).__name__}: {err})"
        # The Encoder contract promises unit rows; normalise anyway so inner product stays cosine.
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return {"id": np.asarray(ids, dtype=object), "vector": vectors, "error": np.asarray(errors, dtype=object)}


def connect(address: str | None) -> bool:
    """Join the Ray cluster at `address`, or start a local one; True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    return True


def default_actors() -> int:
    """One actor per GPU when the cluster has any, else one per CPU."""
    import ray

    resources = ray.cluster_resources()
    return int(resources.get("GPU", 0)) or max(1, int(resources.get("CPU", 1)))


def actor_resources(actors: int) -> dict[str, float]:
    """What each actor reserves: a GPU when there are any; else a share of the CPUs that leaves one free.

    Actors that reserve every CPU starve the parquet read tasks that feed them, and the job never starts.
    """
    import ray

    resources = ray.cluster_resources()
    if resources.get("GPU", 0) >= 1:
        return {"num_gpus": 1.0, "num_cpus": 1.0}
    cpus = float(resources.get("CPU", 1))
    return {"num_gpus": 0.0, "num_cpus": max(0.1, min(1.0, (cpus - 1) / actors))}


def embed_catalog(parquet: Path | str, encoder: EncoderSpec, *, batch_size: int = 64,
                  actors: int | None = None) -> RayEmbedding:
    """Embed every image of a catalogue parquet (`id`, `image` columns) on the connected Ray cluster."""
    import ray

    actors = actors or default_actors()
    # Row order must survive the pool: the index pairs vector i with catalogue row i.
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    dataset = ray.data.read_parquet(str(parquet)).select_columns(["id", "image"])
    # A catalogue is often one parquet file, i.e. one block, which only one actor could take: cut it
    # into blocks of one batch each so the whole pool works.
    dataset = dataset.repartition(target_num_rows_per_block=batch_size)
    embedded = dataset.map_batches(ImageEmbedder, fn_constructor_kwargs={"encoder": encoder, "batch_size": batch_size},
                                   batch_size=batch_size, batch_format="numpy",
                                   compute=ray.data.ActorPoolStrategy(size=actors), **actor_resources(actors))
    ids: list[str] = []
    parts: list[np.ndarray] = []
    errors: dict[str, str] = {}
    for batch in embedded.iter_batches(batch_format="numpy", batch_size=None):
        ids.extend(str(i) for i in batch["id"])
        parts.append(np.asarray(batch["vector"], dtype=np.float32))
        errors.update({str(i): str(e) for i, e in zip(batch["id"], batch["error"], strict=True) if e})
    vectors = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    return RayEmbedding(ids=ids, vectors=vectors, errors=errors)


def build_index_ray(catalog: Path | str, out: Path | str, *, model: str, cfg: IndexConfig = IndexConfig(),
                    address: str | None = None, actors: int | None = None, backend: str = "torch",
                    update: bool = False, encoder: EncoderSpec | None = None) -> tuple[Any, RayIndexReport]:
    """What `stylesearch index --ray` does: embed on Ray, then save the index as the single-process path does.

    `backend` is honoured on every actor. `update` is refused: Ray embeds the whole catalogue, so an
    update would silently be a rebuild.
    """
    if update:
        raise StylesearchError("--update reuses the vectors of unchanged images, which only the single-process "
                               "build does; drop --ray to update, or drop --update to rebuild on Ray")
    try:
        import ray
    except ImportError as err:
        raise StylesearchError("--ray needs Ray Data: pip install 'stylesearch[distributed]'") from err

    started_at = time.perf_counter()
    processed = load_processed(Path(catalog))
    # A partial of a module-level function pickles to the actors; each loads the model on `backend`.
    spec: EncoderSpec = encoder or functools.partial(load_encoder, model, backend, batch_size=cfg.batch_size)
    # The driver's copy names the model in the manifest; loading it first also makes any ONNX export
    # once, here, before the actors would race to write it.
    local = spec()
    started = connect(address)
    try:
        used = actors or default_actors()
        result = embed_catalog(processed.path / "catalog.parquet", spec, batch_size=cfg.batch_size, actors=used)
    finally:
        if started:
            ray.shutdown()
    frame = processed.frame.reset_index(drop=True)
    if result.ids != frame["id"].astype(str).tolist():
        raise StylesearchError("Ray returned the catalogue's rows in another order or incompletely; "
                               "the index would pair vectors with the wrong products")
    keep = np.array([i not in result.errors for i in result.ids], dtype=bool)
    kept = ProcessedCatalog(frame=frame[keep].reset_index(drop=True), manifest=processed.manifest,
                            path=processed.path)
    index = EmbeddingIndex.from_vectors(kept, result.vectors[keep], local, out, cfg, model_name=model)
    report = RayIndexReport(count=len(index), kind=index.kind, actors=used,
                            seconds=time.perf_counter() - started_at, skipped=result.errors)
    return index, report
