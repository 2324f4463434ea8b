"""Chapter 10's comparison of the three committed caption decoders, stored for the chapter.

For each decoder of ``data/weights/`` (Show and Tell, Show, Attend and Tell, Transformer;
the same encoder, data and training budget) it tries beam widths 1, 2, 3 and 5 on the
validation canvases, keeps the best, and captions the test and compositional splits once
with it (:func:`mmcourse.casestudy.evaluation.evaluate_captioners`). Chapter 10 reads the
result and first checks that its own greedy run reproduces a stored number.

    python experiments/decoders.py          # about 5 minutes on 2 CPU cores

Writes ``data/results/casestudy_decoders.json``.
"""

from __future__ import annotations

import importlib.metadata
import time

from mmcourse import config
from mmcourse.casestudy import pretrained, recipe
from mmcourse.casestudy.evaluation import BEAM_WIDTHS, RESULTS_FILE, evaluate_captioners
from mmcourse.casestudy.weights import read_sums
from mmcourse.results import save_results

OUT = RESULTS_FILE


def main() -> None:
    settings = config.setup(seed=0, profile="fast")
    start = time.perf_counter()
    data = recipe.build_data()
    decoders = {kind: pretrained.load_decoder(kind, data.vocab) for kind in recipe.DECODERS}
    results = evaluate_captioners(decoders, data, BEAM_WIDTHS)
    stored = {
        "profile": settings.profile,
        "threads": settings.threads,
        "widths": list(BEAM_WIDTHS),
        "canvases": {s: len(d) for s, d in data.splits.items()},
        "weights_sha256": read_sums(pretrained.WEIGHTS),
        "torch": importlib.metadata.version("torch"),
        "seconds": round(time.perf_counter() - start, 1),
    }
    save_results(OUT, stored, results)
    for kind, result in results.items():
        print(f"{kind:14s} width {result['beam_width']}  test exact {result['test']['exact']:.3f}")
    print(f"written {OUT} in {stored['seconds']} s")


if __name__ == "__main__":
    main()
