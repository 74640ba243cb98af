"""The real CLIP BPE tokenizer, built offline from the vocabulary that open_clip ships.

HF's `CLIPTokenizer` files (vocab.json, merges.txt) are a re-encoding of OpenAI's
`bpe_simple_vocab_16e6.txt.gz`; rebuilding them here gives the tiny preset exactly the token ids
of `openai/clip-vit-base-patch32` with no download.
"""

from __future__ import annotations

import gzip
import json
import os
from functools import lru_cache
from pathlib import Path

from transformers import CLIPTokenizer

from stylesearch.common.files import atomic_write_text

# OpenAI's file holds more merge lines than CLIP uses: 49152 tokens - 256 bytes - 2 specials.
N_MERGES = 49152 - 256 - 2


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP map every byte to a printable character so BPE never sees whitespace or controls.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def _bpe_source() -> Path:
    import open_clip.tokenizer as oct

    return Path(oct.default_bpe())


def write_tokenizer_files(folder: Path) -> Path:
    """Write vocab.json and merges.txt for `CLIPTokenizer` into `folder`."""
    with gzip.open(_bpe_source()) as fh:
        lines = fh.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "vocab.json", json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    atomic_write_text(folder / "merges.txt", "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return folder


def _cache_dir() -> Path:
    base = os.environ.get("STYLESEARCH_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stylesearch" / "clip-bpe"


@lru_cache(maxsize=1)
def clip_tokenizer() -> CLIPTokenizer:
    """The CLIP tokenizer (ids identical to openai/clip-vit-base-patch32's), built with no network."""
    folder = _cache_dir()
    if not (folder / "merges.txt").exists():
        write_tokenizer_files(folder)
    # from_pretrained converts vocab.json + merges.txt exactly as it does for the Hub checkpoint.
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)
