"""Length-bucketed text tower: the same embeddings and gradients as one padded batch, for less work."""

from __future__ import annotations

import torch

from stylesearch.train.towers import PairEncoder, pooled, text_features

WORDS = ["red", "navy blue slim fit cotton", "women", "black leather watch with a steel strap and date",
         "cap", "yellow", "men grey melange round neck t-shirt", "kurta"]


def batch(tiny, n: int = 24):
    texts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(1 + i % 5)) for i in range(n)]
    tokens = tiny.processor.tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    return tokens["input_ids"], tokens["attention_mask"]


def test_buckets_give_the_padded_batch_embeddings_and_gradients(tiny):
    model = tiny.model.train()
    ids, mask = batch(tiny)
    lengths = mask.sum(1)
    assert lengths.max() - lengths.min() >= 8  # else the buckets trim nothing and this test proves little

    plain = pooled(model.get_text_features(input_ids=ids, attention_mask=mask))
    plain.square().sum().backward()
    plain_grads = [p.grad.clone() for p in model.text_model.parameters()]
    model.zero_grad()

    bucketed = text_features(model, ids, mask, buckets=4)
    bucketed.square().sum().backward()
    torch.testing.assert_close(bucketed, plain, atol=1e-5, rtol=1e-4)
    for got, want in zip((p.grad for p in model.text_model.parameters()), plain_grads, strict=True):
        torch.testing.assert_close(got, want, atol=5e-5, rtol=1e-3)  # summation order differs


def test_left_padded_or_small_batches_are_run_as_they_are(tiny):
    model = tiny.model.eval()
    ids, mask = batch(tiny, 6)
    left_ids, left_mask = ids.flip(1), mask.flip(1)  # real tokens last: trimming would cut them, so no buckets
    with torch.no_grad():
        want = pooled(model.get_text_features(input_ids=left_ids, attention_mask=left_mask))
        torch.testing.assert_close(text_features(model, left_ids, left_mask, buckets=4), want)
        small = pooled(model.get_text_features(input_ids=ids, attention_mask=mask))
        torch.testing.assert_close(text_features(model, ids, mask, buckets=4), small)


def test_pair_encoder_returns_unit_vectors_in_row_order(tiny):
    model = tiny.model.eval()
    ids, mask = batch(tiny)
    pixels = torch.randn(len(ids), 3, 64, 64)
    with torch.no_grad():
        image, text = PairEncoder(model)(pixels, ids, mask)
        one = torch.nn.functional.normalize(pooled(model.get_text_features(input_ids=ids[5:6, :int(mask[5].sum())])),
                                            dim=-1)
    torch.testing.assert_close(torch.linalg.norm(image, dim=-1), torch.ones(len(ids)))
    torch.testing.assert_close(text[5:6], one, atol=1e-5, rtol=1e-4)
