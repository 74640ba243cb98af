"""stylesearch: fine-tune CLIP on a clothing catalogue and search it by words or pictures.

>>> from stylesearch import Searcher
>>> searcher = Searcher.from_index("runs/demo/index")  # doctest: +SKIP
>>> searcher.search("red dress", k=5)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names, imported on first use so `import stylesearch` stays cheap (torch loads only when needed).
_EXPORTS = {
    "Catalog": "stylesearch.data.catalog",
    "Product": "stylesearch.data.catalog",
    "read_catalog": "stylesearch.data.catalog",
    "prepare": "stylesearch.data.prepare",
    "load_processed": "stylesearch.data.prepare",
    "load_model": "stylesearch.model.clip",
    "ClipEncoder": "stylesearch.model.clip",
    "Encoder": "stylesearch.model.clip",
    "train": "stylesearch.train.loop",
    "evaluate": "stylesearch.evaluate.metrics",
    "EmbeddingIndex": "stylesearch.index.store",
    "build_index": "stylesearch.index.store",
    "Searcher": "stylesearch.search.searcher",
    "Hit": "stylesearch.search.searcher",
    "load_embeddings": "stylesearch.search.legacy",
    "search_products": "stylesearch.search.legacy",
    "create_app": "stylesearch.serve.app",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stylesearch' has no attribute {name!r}")
