"""The training loop's CPU speed-ups change the arithmetic's order only, never what is learned."""

from __future__ import annotations

import torch

from stylesearch.train.loop import fused_adam, training_attention
from stylesearch.train.towers import PairEncoder, dense_grads, pooled, sparse_token_grads


def grads_after_step(model, pixels, ids, mask, attention: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.set_attn_implementation(attention)
    model.zero_grad()
    image = pooled(model.get_image_features(pixel_values=pixels))
    text = pooled(model.get_text_features(input_ids=ids, attention_mask=mask))
    loss = (image @ text.T).logsumexp(1).mean()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_eager_attention_learns_what_the_fused_kernel_does(tiny):
    model = tiny.model.train()
    tokens = tiny.processor.tokenizer(["red dress", "navy blue slim fit jeans for men", "watch"], padding=True,
                                      return_tensors="pt")  # padded rows: the mask must be applied alike
    pixels = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    want_loss, want = grads_after_step(model, pixels, tokens["input_ids"], tokens["attention_mask"], "sdpa")
    got_loss, got = grads_after_step(model, pixels, tokens["input_ids"], tokens["attention_mask"], "eager")
    torch.testing.assert_close(got_loss, want_loss)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)


def test_a_cpu_run_trains_with_eager_attention_and_the_fused_optimizer():
    cpu = torch.device("cpu")
    assert training_attention(cpu) == "eager" and fused_adam(cpu)
    assert training_attention(torch.device("cuda")) == "sdpa"  # the fused kernel is the fast one on a GPU


def test_sparse_token_gradients_made_dense_are_the_dense_gradients(tiny):
    model = tiny.model.train()
    tokens = tiny.processor.tokenizer(["red dress", "red red dress", "navy blue slim fit jeans for men", "watch",
                                       "black watch", "red dress"], padding=True, return_tensors="pt")
    pixels = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    encoder = PairEncoder(model, buckets=2)  # two buckets: the same token's rows arrive from two calls
    params = [p for p in model.parameters() if p.requires_grad]

    def grads() -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        image, text = encoder(pixels, tokens["input_ids"], tokens["attention_mask"])
        (image @ text.T).logsumexp(1).mean().backward()
        dense_grads(params)
        return [p.grad.clone() for p in params if p.grad is not None]  # the temperature is not in this loss

    want = grads()
    table = sparse_token_grads(model, enabled=True)
    assert table is model.text_model.embeddings.token_embedding and table.sparse
    got = grads()
    table.sparse = False
    assert len(got) == len(want) > 0 and all(not g.is_sparse for g in got)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)
    assert sparse_token_grads(model, enabled=False) is None and not table.sparse
