import math

import torch

from stylesearch.train.losses import contrastive_loss, lr_at, same_item_mask, sigmoid_loss


def reference_loss(logits: list[list[float]], positives: list[list[int]]) -> float:
    """Hand-written soft-target cross-entropy, both directions."""
    def one_way(rows, pos):
        total = 0.0
        for row, p in zip(rows, pos, strict=True):
            lse = math.log(sum(math.exp(v) for v in row))
            targets = [x / sum(p) for x in p]
            total += -sum(t * (v - lse) for t, v in zip(targets, row, strict=True))
        return total / len(rows)
    cols = [list(c) for c in zip(*logits, strict=True)]
    pos_t = [list(c) for c in zip(*positives, strict=True)]
    return (one_way(logits, positives) + one_way(cols, pos_t)) / 2


def test_identity_pairs_at_unit_scale():
    e = torch.eye(2)
    expected = math.log(1 + math.exp(-1))
    assert math.isclose(contrastive_loss(e, e, torch.tensor(0.0)).item(), expected, rel_tol=1e-6)


def test_duplicate_titles_are_positives_not_negatives():
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=-1)
    txt = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [1.0, 0.1], [0.1, 1.0]]), dim=-1)
    groups = torch.tensor([5, 5, 9])  # rows 0 and 1 share a title
    scale = torch.tensor(math.log(10.0))
    logits = (10 * img @ txt.T).tolist()
    positives = [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    got = contrastive_loss(img, txt, scale, same_item_mask(groups)).item()
    assert math.isclose(got, reference_loss(logits, positives), rel_tol=1e-5)
    plain = contrastive_loss(img, txt, scale).item()
    assert got < plain  # treating the duplicate as a negative would punish a correct match


def test_warmup_then_cosine():
    kw = {"base_lr": 1.0, "warmup": 10, "total": 110}
    assert lr_at(0, **kw) == 0.1 and lr_at(9, **kw) == 1.0
    assert math.isclose(lr_at(60, **kw), 0.5, abs_tol=1e-9)
    assert lr_at(110, **kw) < 1e-12


def test_sigmoid_loss_labels_every_shared_title_pair_positive():
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=-1)
    txt = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [1.0, 0.1], [0.1, 1.0]]), dim=-1)
    same = same_item_mask(torch.tensor([5, 5, 9]))
    scale, bias = torch.tensor(math.log(10.0)), torch.tensor(-2.0)
    logits = (10 * img @ txt.T - 2).tolist()
    labels = [[1, 1, -1], [1, 1, -1], [-1, -1, 1]]
    expected = sum(math.log(1 + math.exp(-lab * z)) for row, lr in zip(logits, labels, strict=True)
                   for z, lab in zip(row, lr, strict=True)) / 3
    assert math.isclose(sigmoid_loss(img, txt, scale, bias, same).item(), expected, rel_tol=1e-5)
    assert sigmoid_loss(img, txt, scale, bias, same).item() < sigmoid_loss(img, txt, scale, bias).item()


def test_sigmoid_loss_bias_is_learned_towards_the_negatives_share():
    bias = torch.tensor(0.0, requires_grad=True)
    e = torch.nn.functional.normalize(torch.randn(8, 4), dim=-1)
    sigmoid_loss(e, e, torch.tensor(0.0), bias).backward()
    assert bias.grad > 0  # 56 negative pairs against 8 positives: the bias must fall
