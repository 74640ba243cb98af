"""The seed's API, kept for its first users: `load_embeddings` and `search_products` (pure CLIP, brute force).

    >>> data = load_embeddings("runs/index")  # doctest: +SKIP
    >>> search_products("red dress", model, processor, data["embeddings"], data["image_names"],
    ...                 data["dataframe"], top_k=5)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stylesearch.config import KAGGLE_ATTRIBUTES
from stylesearch.errors import QueryError
from stylesearch.index.store import EmbeddingIndex, plain_value


def load_embeddings(path: Path | str) -> dict[str, Any]:
    """The older loader: {'embeddings': (n, dim) float32, 'image_names': ids, 'dataframe': products}."""
    index = EmbeddingIndex.load(path)
    return {"embeddings": index.vectors(), "image_names": index.products["id"].astype(str).tolist(),
            "dataframe": index.products.copy(), "manifest": index.manifest}


def search_products(query: str, model: Any, processor: Any, image_embeddings: np.ndarray,
                    image_names: Sequence[str], dataframe: pd.DataFrame, top_k: int = 5) -> list[dict[str, Any]]:
    """The older search: brute-force cosine over `image_embeddings`; returns dicts with id, title, score, ...

    `model` is a Hugging Face CLIPModel (with its `processor`), a `LoadedModel`, or any `Encoder`.
    """
    if not isinstance(query, str) or not query.strip():
        raise QueryError("empty query: type some words to search for (e.g. 'blue jeans')")
    vector = _legacy_text_vector(query, model, processor)
    embeddings = np.asarray(image_embeddings, dtype=np.float32)
    scores = embeddings @ vector
    best = np.argsort(-scores, kind="stable")[:top_k]
    ids = [str(i) for i in image_names]
    frame = dataframe.assign(id=dataframe["id"].astype(str)).drop_duplicates("id").set_index("id") \
        if "id" in dataframe.columns else None
    results = []
    for rank, row in enumerate(best, start=1):
        pid = ids[row]
        record = frame.loc[pid] if frame is not None and pid in frame.index else dataframe.iloc[row]
        item: dict[str, Any] = {"rank": rank, "id": pid, "score": round(100.0 * float(scores[row]), 4),
                                "title": plain_value(record.get("title", record.get("productDisplayName")))}
        item.update({c: plain_value(record.get(c)) for c in KAGGLE_ATTRIBUTES if c in record.index})
        results.append(item)
    return results


def _legacy_text_vector(query: str, model: Any, processor: Any) -> np.ndarray:
    if hasattr(model, "encode_texts"):
        return np.asarray(model.encode_texts([query]), np.float32)[0]
    import torch

    if hasattr(model, "processor") and hasattr(model, "model"):  # a LoadedModel
        model, processor = model.model, processor or model.processor
    tokenizer = getattr(processor, "tokenizer", processor)
    limit = int(model.config.text_config.max_position_embeddings)
    tokens = tokenizer([query], padding=True, truncation=True, max_length=limit, return_tensors="pt")
    with torch.inference_mode():
        feats = model.get_text_features(**tokens)
    feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
    return torch.nn.functional.normalize(feats.float(), dim=-1)[0].cpu().numpy()
