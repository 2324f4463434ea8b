"""``python -m mmcourse.casestudy``: the captioning case study from start to end, no notebook.

It builds MNIST-Captions, trains (``--train``) or loads (``--load``) the image encoder and one
caption decoder, chooses the beam width on the validation canvases, captions the test and
compositional canvases once, and writes to ``--out``:

- ``metrics.json``: the settings, the times and, for each split, BLEU-1..4, exact match and
  per-slot accuracy (:func:`mmcourse.caption_metrics.caption_report`);
- ``captions.txt``: every test caption next to its first reference;
- ``samples.png``: a few test canvases with their generated captions;
- ``attention.png``: where the decoder looked for each word of one caption (attention
  decoders only).

``--train`` also saves the weights (``--weights``), with their SHA-256, and the vocabulary, so
a later ``--load`` reproduces the same captions. Each stage saves its run after every epoch
(``OUT/checkpoints``); ``--train --resume`` goes on from there after an interruption.

Under ``torchrun --nproc_per_node=N`` the training is data-parallel (:mod:`mmcourse.parallel`:
each process trains on its part of every batch, DDP averages the gradients) and rank 0 alone
saves the weights and writes the report. One process, with or without torchrun, trains
exactly as before.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from mmcourse import config
from mmcourse.caption_metrics import caption_report_for
from mmcourse.casestudy import recipe
from mmcourse.casestudy.evaluation import BEAM_WIDTHS, choose_beam_width
from mmcourse.casestudy.weights import WeightsError, load_weights, save_weights
from mmcourse.data.captions import DEFAULT_SIZES
from mmcourse.distributed.world import World, current, rank_0_first, start, stop
from mmcourse.models.grid import StoredGrid, swap_encoder
from mmcourse.utils import progress
from mmcourse.vocab import Vocabulary

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "data" / "weights"
EPOCHS = {"fast": {"pretrain": 6, "decoder": 6}, "full": {"pretrain": 12, "decoder": 12}}


def parser() -> argparse.ArgumentParser:
    """The command line, with a help text a newcomer can follow."""
    p = argparse.ArgumentParser(
        prog="python -m mmcourse.casestudy",
        description=(
            "Caption MNIST-Captions canvases end to end: build the data, train or load an "
            "image encoder and a caption decoder, evaluate on the test and compositional "
            "splits, and write a report (metrics.json, captions.txt, figures) to --out."
        ),
        epilog=(
            "Examples:\n"
            "  python -m mmcourse.casestudy --train --out report      # train here, then report\n"
            "  python -m mmcourse.casestudy --load --out report       # use saved weights\n"
            "  python -m mmcourse.casestudy --train --profile full --device cuda\n"
            "  torchrun --standalone --nproc_per_node=2 -m mmcourse.casestudy --train --out report\n"
            "  ... the same with --resume                             # go on after a crash"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--train", action="store_true", help="train the models, then save them")
    mode.add_argument("--load", action="store_true", help="load saved weights (see --weights)")
    p.add_argument(
        "--profile",
        choices=("fast", "full"),
        default="fast",
        help="fast: 10,000 training canvases from the bundled digits, minutes on a laptop; "
        "full: 60,000 from all of MNIST (needs MNIST in data/ or MMCOURSE_DATA), for a GPU",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default="auto",
        help="where to train: auto picks the CPU in the fast profile, the best device in full",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--decoder",
        choices=recipe.DECODERS,
        default="attention",
        help="which caption decoder (default: attention, i.e. Show, Attend and Tell)",
    )
    p.add_argument("--out", type=Path, default=Path("casestudy-report"), help="report folder")
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="folder of the weights: read by --load (default: the committed data/weights), "
        "written by --train (default: OUT/weights, so the committed ones stay as they are)",
    )
    p.add_argument(
        "--canvases",
        type=int,
        default=None,
        help="use at most this many canvases per split (a quick trial; default: the profile's)",
    )
    p.add_argument("--epochs", type=int, default=None, help="decoder epochs (default by profile)")
    p.add_argument(
        "--pretrain-epochs", type=int, default=None, help="encoder epochs (default by profile)"
    )
    _add_run_options(p)
    return p


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Going on after an interruption, and torchrun's backend."""
    p.add_argument(
        "--resume",
        action="store_true",
        help="with --train: go on from the checkpoints an interrupted run left in OUT/checkpoints "
        "(without it, a new run starts from scratch)",
    )
    p.add_argument(
        "--backend",
        choices=("gloo", "nccl"),
        default=None,
        help="under torchrun: the process group's backend (default: nccl where CUDA is "
        "available, else gloo)",
    )


def _check(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    if args.seed < 0:
        p.error(f"--seed must be 0 or more, got {args.seed}")
    for name in ("canvases", "epochs", "pretrain_epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    if args.canvases is not None and args.canvases < 2:
        p.error("--canvases must be at least 2")
    if args.device in ("cuda", "mps"):
        available = (
            torch.cuda.is_available()
            if args.device == "cuda"
            else torch.backends.mps.is_available()
        )
        if not available:
            p.error(f"--device {args.device} is not available here; use --device cpu")
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out} exists and is not a folder")
    if args.resume and not args.train:
        p.error("--resume goes on with an interrupted --train; add --train")


def _paths(folder: Path, decoder: str) -> dict[str, Path]:
    return {
        "encoder": folder / "encoder.pt",
        "decoder": folder / f"{decoder}.pt",
        "vocab": folder / "vocab.json",
    }


def _saved_vocabulary(args: argparse.Namespace) -> Vocabulary:
    """The vocabulary saved with the weights: ``--load`` builds its data with it, so the
    committed weights caption canvases of any profile (the words are the same)."""
    path = _paths(args.weights, args.decoder)["vocab"]
    if not path.exists():
        raise WeightsError(
            f"no vocabulary at {path}. Train the weights with: python -m mmcourse.casestudy --train"
        )
    return Vocabulary(json.loads(path.read_text()))


def _load(
    args: argparse.Namespace, vocab: Vocabulary, device: torch.device
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The saved encoder and decoder on ``device``, or a :class:`WeightsError` saying how to
    make them."""
    paths = _paths(args.weights, args.decoder)
    hint = "Train them with: python -m mmcourse.casestudy --train"
    if json.loads(paths["vocab"].read_text()) != vocab.itos:
        raise WeightsError(
            f"the weights in {args.weights} were trained with another vocabulary than this "
            f"data's. {hint}"
        )
    encoder = load_weights(recipe.new_encoder(args.seed), paths["encoder"], hint)
    decoder = recipe.make_decoder(args.decoder, len(vocab), encoder.encoder)
    load_weights(decoder, paths["decoder"], hint)
    return encoder.to(device), decoder.to(device)


def _checkpoints(args, world: World) -> dict[str, Path]:
    """Where each stage saves its run after every epoch. A new run (no ``--resume``) starts
    by deleting those an earlier run left; rank 0 does it while the others wait."""
    folder = args.out / "checkpoints"
    paths = {"encoder": folder / "encoder.pt", "decoder": folder / f"{args.decoder}.pt"}
    if world.is_main and not args.resume:
        for path in paths.values():
            path.unlink(missing_ok=True)
    if world.distributed:
        dist.barrier()
    return paths


def _train(args, data, epochs, device, times):
    world = current()
    checkpoints = _checkpoints(args, world)
    start = time.perf_counter()
    encoder, _, _ = recipe.pretrain_encoder(
        data.splits["train"], epochs["pretrain"], seed=args.seed, device=device, progress=True,
        checkpoint=checkpoints["encoder"],
    )  # fmt: skip
    times["pretrain_s"] = time.perf_counter() - start
    regions = {s: recipe.store_regions(encoder, data.images(s)) for s in ("train", "val")}
    decoder = recipe.make_decoder(
        args.decoder, len(data.vocab), StoredGrid(64, recipe.REGION_DIM), seed=args.seed
    )
    start = time.perf_counter()
    history = recipe.train_decoder(
        decoder,
        (regions["train"], data.captions["train"]),
        epochs=epochs["decoder"],
        val=(regions["val"], data.splits["val"]),
        vocab=data.vocab,
        seed=args.seed,
        device=device,
        progress=True,
        checkpoint=checkpoints["decoder"],
    )
    times["decoder_s"] = time.perf_counter() - start
    swap_encoder(decoder, encoder.encoder)
    if not world.is_main:  # the ranks' weights are equal: rank 0 alone saves them
        return encoder, decoder, history
    paths = _paths(args.weights, args.decoder)
    save_weights(encoder, paths["encoder"])
    save_weights(decoder, paths["decoder"])
    paths["vocab"].write_text(json.dumps(data.vocab.itos) + "\n")
    return encoder, decoder, history


def _epochs_and_sizes(args) -> tuple[dict[str, int], dict[str, int] | None]:
    """The epochs of each stage and the canvases of each split the arguments ask for."""
    epochs = dict(EPOCHS[args.profile])
    epochs["decoder"] = args.epochs or epochs["decoder"]
    epochs["pretrain"] = args.pretrain_epochs or epochs["pretrain"]
    sizes = None
    if args.canvases is not None:
        sizes = {s: min(n, args.canvases) for s, n in DEFAULT_SIZES[args.profile].items()}
    return epochs, sizes


def _write_report(args, data, decoder, report: dict, times: dict) -> dict[str, list[str]]:
    """Caption the test and compositional canvases with the chosen beam; write metrics.json
    and captions.txt to ``args.out``; return the captions."""
    report["metrics"] = {}
    captions = {}
    for split in ("test", "compositional"):
        texts = recipe.write_captions(
            decoder, data.images(split), data.vocab, beam_width=report["beam_width"]
        )
        captions[split] = texts
        report["metrics"][split] = caption_report_for(texts, data.splits[split])
    report["times"] = {k: round(v, 1) for k, v in times.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"{said}\t{data.splits['test'].captions[i][0]}" for i, said in enumerate(captions["test"])
    ]
    (args.out / "captions.txt").write_text("generated\treference\n" + "\n".join(lines) + "\n")
    return captions


def main(argv: list[str] | None = None) -> int:
    """Run the case study; returns the exit status (0 on success, 2 on a weights problem).

    Under ``torchrun`` every process trains its part of each batch (:mod:`mmcourse.parallel`)
    and rank 0 alone saves the weights and writes the report."""
    p = parser()
    args = p.parse_args(argv)
    if args.weights is None:
        args.weights = DEFAULT_WEIGHTS if args.load else args.out / "weights"
    _check(args, p)
    world = start(args.backend)  # one process without torchrun
    if world.distributed and not args.train:
        p.error("--load only evaluates, in one process: run it without torchrun")
    settings = config.setup(
        seed=args.seed, profile=args.profile, device=_device(args, world), threads=_threads(world)
    )
    try:
        status = _run(args, settings, world)
    finally:
        if world.distributed:
            dist.barrier()  # the others wait while rank 0 writes the report
        stop()
    return status


def _device(args, world: World) -> str | None:
    if world.distributed and world.device.type == "cuda":
        return "cuda"  # this rank's GPU: start() made cuda:LOCAL_RANK the current one
    return None if args.device == "auto" else args.device


def _threads(world: World) -> int | None:
    """Under torchrun, the threads torchrun gives each process (``OMP_NUM_THREADS``)."""
    if not world.distributed:
        return None
    return int(os.environ.get("OMP_NUM_THREADS", "0")) or None


def _build(args, sizes, vocab) -> recipe.CaseStudyData:
    """The data; under torchrun rank 0 builds (and caches) it first, then the others read."""
    with rank_0_first(current()):
        return recipe.build_data(sizes, seed=args.seed, profile=args.profile, vocab=vocab)


def _run(args, settings, world: World) -> int:
    epochs, sizes = _epochs_and_sizes(args)
    times: dict[str, float] = {}
    stages = progress(total=4, desc="case study", unit="stage", disable=not world.is_main)
    start_time = time.perf_counter()
    history = None
    try:
        vocab = None if args.train else _saved_vocabulary(args)
        data = _build(args, sizes, vocab)
        times["data_s"] = time.perf_counter() - start_time
        stages.update()
        if args.train:
            encoder, decoder, history = _train(args, data, epochs, settings.device, times)
        else:
            encoder, decoder = _load(args, data.vocab, settings.device)
    except WeightsError as error:
        stages.close()
        print(f"error: {error}", file=sys.stderr)
        return 2
    stages.update()
    if not world.is_main:
        stages.close()
        return 0
    beam_width, val_exact = choose_beam_width(decoder, data, BEAM_WIDTHS)  # on validation only
    stages.update()
    report = {
        "settings": {
            "profile": args.profile,
            "device": str(settings.device),
            "processes": world.size,
            "seed": args.seed,
            "decoder": args.decoder,
            "mode": "train" if args.train else "load",
            "epochs": epochs if args.train else None,
            "canvases": {s: len(d) for s, d in data.splits.items()},
        },
        "validation_exact_by_beam_width": {str(w): v for w, v in val_exact.items()},
        "beam_width": beam_width,
        "best_epoch": history.best_epoch if history is not None else None,
    }
    captions = _write_report(args, data, decoder, report, times)
    _figures(args, data, decoder, captions["test"])
    stages.update()
    stages.close()
    for split, metrics in report["metrics"].items():
        print(
            f"{split:13s} exact {metrics['exact']:.3f}  BLEU-4 {metrics['bleu4']:.3f}  "
            f"digit {metrics['digit']:.3f}  thickness {metrics['thickness']:.3f}"
        )
    print(f"report written to {args.out}/ (beam width {beam_width}, chosen on validation)")
    return 0


def _figures(args, data, decoder, texts) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from mmcourse import viz

    test = data.splits["test"]
    shown = min(8, len(test))
    fig = viz.show_images(test.images[:shown], titles=texts[:shown], ncols=4)
    fig.savefig(args.out / "samples.png", dpi=100, bbox_inches="tight")
    if args.decoder != "show_and_tell":
        tokens, weights = recipe.caption_with_attention(
            decoder, data.images("test")[:1], data.vocab
        )
        fig = viz.show_attention(test.images[0], weights.view(len(tokens), 8, 8), tokens)
        fig.savefig(args.out / "attention.png", dpi=100, bbox_inches="tight")
