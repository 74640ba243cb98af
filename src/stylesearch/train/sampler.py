"""Batches of confusable products, so in-batch negatives teach the differences shoppers care about.

With random batches of 32 from 141 article types, a dress rarely meets a nightdress in a batch, so
the loss never has to tell them apart. Four samplers, all a pure function of (seed, epoch) so
--resume replays an epoch exactly, and all giving the same number of batches as the random one:

- ``random``: `train.epoch_batches`, the shuffled order.
- ``confusable``: a batch is a block of one subCategory, drawn round-robin over its article types
  (different types side by side) and, inside a type, round-robin over colours (same type, different
  colour side by side). Blocks are shuffled, so consecutive steps still see different subCategories.
- ``mixed``: half the products (drawn per epoch) in confusable batches, the other half in random
  ones, the batches shuffled together: look-alikes side by side without losing the easy negatives.
- ``hard``: each product is followed by its nearest neighbours under the current model (image
  embeddings, mined once at the start of each epoch and cached as `mined/epoch-<n>.npy` in the run
  directory, so a resumed epoch reuses the same neighbours rather than re-mining with later weights).
  Under torchrun every rank embeds its share; rank 0 finds the neighbours and broadcasts them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stylesearch.common.files import atomic_write_bytes
from stylesearch.data.images import decode_image
from stylesearch.errors import StylesearchError
from stylesearch.model.clip import ClipEncoder
from stylesearch.train import distributed

SAMPLERS = ("random", "confusable", "mixed", "hard")
LABELS = ("subCategory", "articleType", "baseColour")
NEIGHBOURS = 3  # per anchor: a batch of 32 holds 8 look-alike quads, not one 32-long chain


def chunks(order: Sequence[int], batch_size: int, world: int = 1) -> list[list[int]]:
    """`order` cut into batches of `batch_size`, dropping a last batch too small to train on."""
    batches = [list(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
    # A batch of one has no negatives; under torchrun every rank needs at least one row (as epoch_batches).
    return [b for b in batches if len(b) >= max(2, world)]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, world: int = 1) -> list[list[int]]:
    """The epoch's shuffled global batches, a pure function of (seed, epoch) so --resume can skip exactly.

    Under torchrun every rank computes the same list and takes its slice of each batch (`shard`).
    """
    return chunks(np.random.default_rng([seed, epoch]).permutation(n).tolist(), batch_size, world)


def _round_robin(lists: list[list[int]]) -> list[int]:
    out: list[int] = []
    longest = max((len(x) for x in lists), default=0)
    for i in range(longest):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def _labels(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({c: frame[c].astype("string").fillna("?") if c in frame else "?" for c in LABELS},
                        index=range(len(frame)))


def _confusable_blocks(labels: pd.DataFrame, batch_size: int,
                       rng: np.random.Generator) -> tuple[list[list[int]], list[int]]:
    """Full batches of one subCategory each, and the rows left over when a subCategory does not fill one."""
    blocks: list[list[int]] = []
    leftovers: list[int] = []
    for _, sub in labels.groupby("subCategory", sort=True):
        per_type = []
        for _, typ in sub.groupby("articleType", sort=True):
            per_colour = [rng.permutation(c.index.to_numpy()).tolist()
                          for _, c in typ.groupby("baseColour", sort=True)]
            per_colour = [per_colour[i] for i in rng.permutation(len(per_colour))]
            per_type.append(_round_robin(per_colour))
        per_type = [per_type[i] for i in rng.permutation(len(per_type))]
        order = _round_robin(per_type)
        full = len(order) // batch_size * batch_size
        blocks.extend(order[i:i + batch_size] for i in range(0, full, batch_size))
        leftovers.extend(order[full:])
    return blocks, leftovers


def confusable_batches(frame: pd.DataFrame, batch_size: int, seed: int, epoch: int,
                       world: int = 1) -> list[list[int]]:
    """Batches that each hold one subCategory, mixing its article types and, within a type, its colours."""
    rng = np.random.default_rng([seed, epoch, 1])
    blocks, leftovers = _confusable_blocks(_labels(frame), batch_size, rng)
    # Remainders of small subCategories fill the last batches together, shuffled.
    sequence = [i for b in rng.permutation(len(blocks)) for i in blocks[b]]
    sequence += [leftovers[i] for i in rng.permutation(len(leftovers))]
    batches = chunks(sequence, batch_size, world)
    return [batches[i] for i in rng.permutation(len(batches))]


def mixed_batches(frame: pd.DataFrame, batch_size: int, seed: int, epoch: int, world: int = 1,
                  share: float = 0.5) -> list[list[int]]:
    """About `share` of the batches confusable, the rest random: look-alikes without starving easy negatives."""
    rng = np.random.default_rng([seed, epoch, 3])
    order = rng.permutation(len(frame))
    chosen = np.sort(order[:int(round(share * len(frame)))])
    labels = _labels(frame).iloc[chosen].reset_index(drop=True)
    blocks, leftovers = _confusable_blocks(labels, batch_size, rng)
    blocks = [[int(chosen[i]) for i in block] for block in blocks]
    rest = np.concatenate([order[len(chosen):], chosen[leftovers]]).astype(int)
    rest = rest[rng.permutation(len(rest))].tolist()
    # Confusable blocks are full, so the random rest ends with the only short batch, as in `epoch_batches`.
    batches = [b for b in blocks if len(b) >= max(2, world)] + chunks(rest, batch_size, world)
    return [batches[i] for i in rng.permutation(len(batches))]


def hard_batches(neighbours: np.ndarray, batch_size: int, seed: int, epoch: int,
                 per_anchor: int = NEIGHBOURS, world: int = 1) -> list[list[int]]:
    """Anchors in shuffled order, each followed by up to `per_anchor` of its unused nearest neighbours.

    `neighbours` is (n, m): row i lists the products nearest to product i, best first (i itself may
    appear and is skipped). Every product is used exactly once.
    """
    n = len(neighbours)
    rng = np.random.default_rng([seed, epoch, 2])
    used = np.zeros(n, dtype=bool)
    sequence: list[int] = []
    for anchor in rng.permutation(n):
        if used[anchor]:
            continue
        used[anchor] = True
        sequence.append(int(anchor))
        taken = 0
        for other in neighbours[anchor]:
            if taken >= per_anchor:
                break
            if 0 <= other < n and not used[other]:
                used[other] = True
                sequence.append(int(other))
                taken += 1
    batches = chunks(sequence, batch_size, world)
    return [batches[i] for i in rng.permutation(len(batches))]


def mine_neighbours(image_vectors: np.ndarray, k: int = 8) -> np.ndarray:
    """(n, k) nearest neighbours of each row by cosine (rows are L2-normalised), itself excluded."""
    import faiss

    vectors = np.ascontiguousarray(image_vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, found = index.search(vectors, min(k + 1, len(vectors)))
    out = np.full((len(vectors), k), -1, dtype=np.int64)
    for i, row in enumerate(found):
        row = [j for j in row if j != i and j >= 0][:k]
        out[i, :len(row)] = row
    return out


def image_vectors(loaded, frame: pd.DataFrame, rows: Sequence[int]) -> np.ndarray:
    """L2-normalised image embeddings of `frame`'s `rows`, in that order, under the current weights."""
    was_training = loaded.model.training
    encoder = ClipEncoder(loaded, batch_size=128, device=next(loaded.model.parameters()).device)
    images = frame["image"].tolist()
    parts = [encoder.encode_images([decode_image(images[r], where=f"row {r}") for r in rows[i:i + 1024]])
             for i in range(0, len(rows), 1024)]
    loaded.model.train(was_training)
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, encoder.dim), np.float32)


def mined_for_epoch(loaded, frame: pd.DataFrame, epoch: int, cache_dir: Path | None) -> np.ndarray:
    """The epoch's neighbours: read from the run's cache if mined before, else mined now and cached.

    Under torchrun each rank embeds its own share of the products and the shares are gathered; rank 0
    alone finds the neighbours, caches them and broadcasts them, so every rank plans the same batches.
    """
    import torch

    main = distributed.is_main()
    path = Path(cache_dir) / "mined" / f"epoch-{epoch}.npy" if cache_dir is not None else None
    cached = None
    if main and path is not None and path.is_file():
        cached = np.load(path)
        cached = cached if len(cached) == len(frame) else None
    # Rank 0 decides, and says so: the other ranks' disks may not hold its cache.
    if distributed.broadcast(cached is not None):
        return distributed.broadcast(cached)
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    rank = torch.distributed.get_rank() if world > 1 else 0
    sizes = distributed.shard_sizes(len(frame), world)
    share = image_vectors(loaded, frame, distributed.shard(list(range(len(frame))), rank, world))
    device = next(loaded.model.parameters()).device
    vectors = distributed.gather(torch.from_numpy(share).to(device), sizes).cpu().numpy()
    neighbours = mine_neighbours(vectors) if main else None
    if main and path is not None:
        buffer = io.BytesIO()
        np.save(buffer, neighbours)
        atomic_write_bytes(path, buffer.getvalue())
    return distributed.broadcast(neighbours)


def plan_batches(sampler: str, frame: pd.DataFrame, batch_size: int, seed: int, epoch: int, world: int = 1, *,
                 loaded=None, cache_dir: Path | None = None) -> list[list[int]]:
    """The epoch's batches for `TrainConfig.sampler`.

    For ``hard`` without a model (`loaded=None`, e.g. when counting steps) the confusable batches
    stand in: every sampler yields the same number of batches for the same table.
    """
    if sampler == "random":
        return epoch_batches(len(frame), batch_size, seed, epoch, world)
    if sampler == "confusable" or (sampler == "hard" and loaded is None):
        return confusable_batches(frame, batch_size, seed, epoch, world)
    if sampler == "mixed":
        return mixed_batches(frame, batch_size, seed, epoch, world)
    if sampler == "hard":
        return hard_batches(mined_for_epoch(loaded, frame, epoch, cache_dir), batch_size, seed, epoch, world=world)
    raise StylesearchError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
