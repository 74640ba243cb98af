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
    "Catalog": "stylesearch.catalog",
    "Product": "stylesearch.catalog",
    "read_catalog": "stylesearch.catalog",
    "prepare": "stylesearch.prepare",
    "load_processed": "stylesearch.prepare",
    "load_model": "stylesearch.model",
    "ClipEncoder": "stylesearch.model",
    "Encoder": "stylesearch.model",
    "train": "stylesearch.train",
    "evaluate": "stylesearch.evaluate",
    "EmbeddingIndex": "stylesearch.index",
    "build_index": "stylesearch.index",
    "Searcher": "stylesearch.search",
    "Hit": "stylesearch.search",
    "load_embeddings": "stylesearch.search",
    "search_products": "stylesearch.search",
    "create_app": "stylesearch.serve",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stylesearch' has no attribute {name!r}")
