"""How fast does each explorer answer a moved control? (The target: within half a second on 2
CPU cores.)

    python experiments/explorers.py          # about a minute; writes data/results/explorers_bench.json

Each explorer is built as its chapter builds it (fast profile; committed weights for chapters
10 and 11; for chapter 06 a VQA model of each kind, untrained, since the time does not depend
on what the weights learned). Then every control is moved through several values, one at a
time, and the seconds from the change to the new picture are recorded
(:meth:`Explorer.response_seconds`: computing, drawing and making the PNG, as the widget does;
the browser's own redraw of a PNG is not included). Reported: median and slowest per explorer.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse import config  # noqa: E402  (before torch: the portable settings)

settings = config.setup(seed=0)

import torch  # noqa: E402

from mmcourse import fusion_study  # noqa: E402
from mmcourse.casestudy import pretrained, recipe  # noqa: E402
from mmcourse.data import mnist, questions  # noqa: E402
from mmcourse.data.captions import digit_pool, make_mnist_captions  # noqa: E402
from mmcourse.explorers.caption_explorer import CaptionExplorer  # noqa: E402
from mmcourse.explorers.corruption_explorer import KINDS, CorruptionExplorer  # noqa: E402
from mmcourse.explorers.fusion_explorer import FusionExplorer  # noqa: E402
from mmcourse.explorers.retrieval_explorer import RetrievalExplorer  # noqa: E402
from mmcourse.explorers.shared_space_explorer import SharedSpaceExplorer, train_spaces  # noqa: E402
from mmcourse.models.vqa import CanvasBackbone  # noqa: E402

OUT = ROOT / "data" / "results" / "explorers_bench.json"


def moves(explorer, changes: dict[str, list]) -> list[float]:
    """Response seconds for each value of each control, the others at their start."""
    start = explorer.start_values()
    explorer.response_seconds(start)  # warm-up
    return [
        explorer.response_seconds({**start, name: value})
        for name, values in changes.items()
        for value in values
    ]


def main() -> None:
    torch.set_num_threads(2)
    results = {}
    digits, labels = mnist.load_digits("train")
    test_digits, test_labels = mnist.load_digits("test")
    spaces = train_spaces(mnist.to_float(digits[:9000]), labels[:9000], epochs=1)
    shared = SharedSpaceExplorer(
        spaces, mnist.to_float(test_digits), test_labels, test_digits, split="test"
    )
    results["shared space (ch01)"] = moves(
        shared, {"temperature": shared.temperatures, "digit": [1, 50, 500, 1999]}
    )

    test_data = make_mnist_captions("test", n=500)
    qa = questions.make_vqa(test_data)
    torch.manual_seed(0)
    backbone = CanvasBackbone().eval()
    models = {
        name: fusion_study.build_vqa_model(make(backbone), len(qa.vocab), backbone)
        for name, make in fusion_study.FUSIONS.items()
    }
    regions = backbone.store_regions(test_data.float_images())
    fusion = FusionExplorer(models, regions, test_data, qa.vocab, backbone.grid_size)
    results["fusion playground (ch06)"] = moves(
        fusion,
        {"fusion": list(models), "canvas": [3, 99, 400], "question": fusion.questions[:4]},
    )

    curves = {kind: [{name: 0.5 for name in models} for _ in range(6)] for kind in KINDS}
    severity = CorruptionExplorer(models, backbone, test_data, qa, curves)
    results["severity explorer (ch13)"] = moves(
        severity, {"kind": list(KINDS), "severity": [0, 1, 3, 5], "canvas": [3, 99, 400]}
    )

    data = recipe.build_data(vocab=pretrained.vocabulary())
    test = data.splits["test"]
    pool, _ = digit_pool("test")
    start = int(torch.nonzero(test.n_digits == 2)[0])
    captions = CaptionExplorer(
        pretrained.load_decoder("attention", data.vocab), data.vocab, test, pool, start
    )
    results["caption explorer (ch10)"] = moves(
        captions,
        {
            "canvas": [0, 100, 1000],
            "size": ["small", "large"],
            "thickness": ["thin", "normal", "thick"],
            "slant": ["left", "upright", "right"],
            "beam_width": [1, 2, 3, 4, 5],
        },
    )

    search = RetrievalExplorer(
        pretrained.load_dual_encoder(data.vocab), data.vocab, test.images, test_digits, test_labels
    )
    results["retrieval explorer (ch11)"] = moves(
        search,
        {
            "query": ["a small two", "two digits : a large three on the right", "a purple cat"],
            "k": [1, 8],
            "digit": [1, 100, 1999],
        },
    )

    summary = {
        name: {
            "moves": len(seconds),
            "median_s": round(statistics.median(seconds), 3),
            "slowest_s": round(max(seconds), 3),
        }
        for name, seconds in results.items()
    }
    for name, row in summary.items():
        print(f"{name:28s} {row['moves']:3d} moves: median {row['median_s']:.3f} s, "
              f"slowest {row['slowest_s']:.3f} s")  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {"threads": torch.get_num_threads(), "profile": settings.profile, "explorers": summary},
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
