"""Benchmark: gapdiag's single embedding pass vs the naive evaluation loop of the seed write-up.

The peer, measured in the same run on the same model and data, is what user code typically does: encode
both images of every pair, and the anchor plus every candidate of every episode, batch by batch. gapdiag
embeds each unique item once. Prints times and the ratio gapdiag / naive (below 1 = gapdiag faster).

    python benchmarks/bench_embed.py [--pairs 20000] [--episodes 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gapdiag import Items, SiameseModel, Split
from gapdiag.data import make_episodes, make_pairs
from gapdiag.digits import SiameseCNN, load_digits_images
from gapdiag.embed import embed_splits


def naive(net, images, pairs, episodes, batch_size=256):
    with torch.no_grad():
        for s in range(0, len(pairs), batch_size):
            sl = slice(s, s + batch_size)
            net.distance(net.encode(images[pairs.left[sl]]), net.encode(images[pairs.right[sl]]))
        for s in range(0, len(episodes), batch_size):
            sl = slice(s, s + batch_size)
            a = net.encode(images[episodes.anchor[sl]])
            for c in range(episodes.n_way):
                net.distance(a, net.encode(images[episodes.candidates[sl, c]]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    images, labels = load_digits_images(channels=3, size=16)
    items = Items(images, labels=labels)
    pairs = make_pairs(items, n_pairs=args.pairs)
    episodes = make_episodes(items, n_way=10, n_episodes=args.episodes)
    net = SiameseCNN(in_channels=3).eval()
    model = SiameseModel(net)
    split_p, split_e = Split("train", items, pairs=pairs), Split("val", items, episodes=episodes)

    def ours():
        emb = embed_splits(model, [split_p, split_e], progress=False)
        e = emb.embeddings["train"]
        model.raw_scores(e[pairs.left], e[pairs.right])
        v = emb.embeddings["val"]
        model.raw_scores(v[np.repeat(episodes.anchor, 10)], v[episodes.candidates.ravel()])

    t_ours = min(_time(ours) for _ in range(args.repeats))
    t_naive = min(_time(lambda: naive(net, images, pairs, episodes)) for _ in range(args.repeats))
    print(
        f"items {len(items)}, pairs {len(pairs)}, {episodes.n_way}-way episodes {len(episodes)}, input 3x16x16"
    )
    print(f"gapdiag single pass : {t_ours:8.3f} s")
    print(f"naive per-pair loop : {t_naive:8.3f} s")
    print(f"ratio gapdiag/naive : {t_ours / t_naive:8.3f}  (below 1 = faster)")


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
