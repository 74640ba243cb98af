"""What a training step costs with each text-views mode, on the real architecture (weights do not matter).

    stylesearch prepare --data ../shared/data/fashion-product-images-small/dev.parquet --out /tmp/catalog
    python benchmarks/text_views_cost.py --catalog /tmp/catalog --model vit-b-32-random --batch-size 32 --steps 3

One step = both towers forward, the loss, backward (no optimizer step), on the same real products
each time; the median wall time of `--steps` steps after one warm-up step is reported per mode.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True, help="a processed catalogue (stylesearch prepare)")
    parser.add_argument("--model", default="vit-b-32-random")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    from stylesearch.data.prepare import load_processed
    from stylesearch.model.clip import load_model
    from stylesearch.train.loop import global_loss
    from stylesearch.train.pairs import PairCollator, train_transform
    from stylesearch.train.textviews import training_texts
    from stylesearch.train.towers import PairEncoder

    frame = load_processed(args.catalog).split("train").head(args.batch_size).reset_index(drop=True)
    loaded = load_model(args.model, seed=0)
    model = loaded.model.train()
    size = int(model.config.vision_config.image_size)
    collate = PairCollator(loaded.processor.tokenizer, int(model.config.text_config.max_position_embeddings))
    pair = PairEncoder(model)
    print(f"{args.model}, batch {args.batch_size}, {torch.get_num_threads()} threads")
    for mode in ("full_text", "views", "views-sum"):
        data, collate_mode = training_texts(frame, train_transform(size), collate, mode)
        torch.manual_seed(0)
        batch = collate_mode([data[i] for i in range(len(frame))])
        times = []
        for step in range(args.steps + 1):
            started = time.perf_counter()
            image, text = pair(batch["pixel_values"], batch["input_ids"], batch["attention_mask"])
            keys = batch.get("text_keys")
            loss = global_loss(image, text, batch["groups"], model.logit_scale, [len(frame)], keys)
            model.zero_grad(set_to_none=True)
            loss.backward()
            if step:  # the first step warms up allocators and kernels
                times.append(time.perf_counter() - started)
        texts = len(batch["input_ids"])
        print(f"{mode:10s} {texts:4d} texts x {batch['input_ids'].shape[1]:2d} tokens: "
              f"median step {statistics.median(times):.2f} s over {len(times)}", flush=True)


if __name__ == "__main__":
    main()
