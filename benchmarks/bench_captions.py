"""How fast is MNIST-Captions generated? Prints canvases per second on this machine.

Usage:  python benchmarks/bench_captions.py [--n 20000] [--threads 2] [--repeats 3]

Counts everything a split needs: layouts, drawing (redraws included), four captions and the
Q/A pairs per canvas. The digit pool (the bundled subset) is loaded once, outside the timing.
Then the same split as a chapter builds it, ``make_mnist_captions``: the first call generates
and stores it in a fresh disk cache (``mmcourse.data.cache``), the second reads it back.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from mmcourse.data import captions, mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="canvases per run")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (best is reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pool = mnist.load_subset("train")
    captions.generate(1000, "train", *pool)  # warm-up
    times = []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        data = captions.generate(args.n, "train", *pool, seed=repeat)
        times.append(time.perf_counter() - start)
    best = min(times)
    render_start = time.perf_counter()
    layout = captions.sample_split_layout(args.n, "train", torch.Generator().manual_seed(0))
    captions.render_layout(layout, *pool, torch.Generator().manual_seed(0))
    render = time.perf_counter() - render_start
    print(f"threads: {torch.get_num_threads()}, canvases per run: {len(data):,}")
    print(f"best of {args.repeats}: {best:.2f} s -> {args.n / best:,.0f} canvases/s (everything)")
    print(f"images only: {render:.2f} s -> {args.n / render:,.0f} canvases/s")
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MMCOURSE_CACHE"] = folder
        for label in ("first build (generated, stored)", "second build (read from the cache)"):
            start = time.perf_counter()
            data = captions.make_mnist_captions("train", n=args.n, profile="fast")
            took = time.perf_counter() - start
            print(f"{label}: {took:.2f} s -> {args.n / took:,.0f} canvases/s")


if __name__ == "__main__":
    main()
