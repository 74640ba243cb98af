"""The `stylesearch` command line: one thin command per stage; errors become messages and exit codes.

`app` (the entry point `stylesearch.cli:app`) lives in `cli.base`; each module below registers its commands
on it when imported. None of them imports torch, transformers, onnxruntime or faiss at import time, so
`stylesearch --help` starts at once: heavy imports happen inside the command that needs them.
"""

from stylesearch.cli import curate, doctor, pipeline, quality, search, serve  # noqa: F401  (registers the commands)
from stylesearch.cli.base import app

__all__ = ["app"]
