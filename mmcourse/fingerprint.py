"""Does this machine compute the stored notebooks' numbers? A fingerprint of its arithmetic.

:mod:`mmcourse.portable` pins the choices of kernels that the CPU libraries let a user pin,
and on the machines that stored the notebooks (AMD EPYC) that is enough: every stored number
comes back. It is not enough everywhere. On an Intel Xeon with AVX-512, with the same
settings and versions, chapter 01's joint space ends its first epoch at a training loss of
1.9793 where the stored notebook says 1.9748 -- a model of linear layers only, so MKL's
matrix products alone differ there -- and the convolutions of chapter 13 changed their last
bits when that virtual machine moved to another host (oneDNN sizes its work by the caches).

So whether a machine reproduces the stored numbers is measured, not assumed.
:func:`fingerprint` trains a small probe -- convolutions with batch norm, an MLP on the
pixels, an LSTM, a Transformer layer, cross-entropy and Adam, the operations the chapters
train with -- for a few steps on bundled MNIST digits and hashes its weights; :data:`RECORD`
holds the fingerprint of the machine that stored the notebooks. The tests compare the notebooks bit
for bit where the two agree and within tolerances where they do not (``tests/notebook_modes.py``).

    python -m mmcourse.fingerprint [--steps N]    # prints: fingerprint  final loss  ATen's ISA
    python -m mmcourse.fingerprint --record       # writes this machine's into RECORD

Run it in a fresh process (as :func:`measure` does): it calls :func:`mmcourse.config.setup`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import mmcourse  # noqa: F401  (first: its portable numerics settings must reach torch)

# isort: split
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse import config
from mmcourse._validate import check_int
from mmcourse.data import mnist

RECORD = Path(__file__).resolve().parent.parent / "notebooks" / "arithmetic_fingerprint.json"
"""The fingerprint of the machine that stored the notebooks, with its steps and processor."""

STEPS = 8
"""Training steps of the probe the tests run (a few seconds)."""


class Probe(nn.Module):
    """Every kind of layer the chapters train, small: a CNN, an MLP on the pixels (chapter 01's
    joint space is one), an LSTM, a Transformer layer."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        )  # fmt: skip
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 64), nn.ReLU())
        self.embed = nn.Embedding(21, 32)
        self.lstm = nn.LSTM(32, 32, batch_first=True)
        self.attend = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
        self.head = nn.Linear(32 * 16 + 64 + 32 + 32, 10)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        e = self.embed(tokens)
        h, _ = self.lstm(e)
        features = [self.cnn(x), self.mlp(x), h[:, -1], self.attend(e).mean(1)]
        return self.head(torch.cat(features, 1))


def fingerprint(steps: int = STEPS) -> tuple[str, float]:
    """Train :class:`Probe` for ``steps`` Adam steps (seed 0, fast profile) on the first 1,024
    bundled training digits; returns the first 16 hex digits of the SHA-256 of its weights and
    the last batch's loss."""
    check_int(steps, "steps")
    config.setup(seed=0, profile="fast")
    images, labels = mnist.load_subset("train")
    x = images[:1024, None].float() / 255.0
    y = labels[:1024]
    tokens = (x.flatten(1)[:, ::64] * 20).long()  # a 13-token "sentence" per digit
    model = Probe()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = torch.zeros(())
    for step in range(steps):
        batch = slice((step * 64) % 1024, (step * 64) % 1024 + 64)
        loss = F.cross_entropy(model(x[batch], tokens[batch]), y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    weights = b"".join(p.detach().numpy().tobytes() for p in model.parameters())
    return hashlib.sha256(weights).hexdigest()[:16], float(loss.detach())


def measure(environ: Mapping[str, str], steps: int = STEPS) -> str:
    """This machine's fingerprint under ``environ``, from a fresh interpreter."""
    check_int(steps, "steps")
    env = dict(environ)
    root = str(RECORD.parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-m", "mmcourse.fingerprint", "--steps", str(steps)],
        env=env,
        capture_output=True,
        text=True,
        cwd=root,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the arithmetic probe failed:\n{done.stderr[-2000:]}")
    return done.stdout.split()[0]


def recorded() -> dict[str, object]:
    """The stored machine's record: ``fingerprint``, ``steps``, ``processor``, ``note``."""
    if not RECORD.exists():
        raise FileNotFoundError(
            f"{RECORD} is missing: run `python -m mmcourse.fingerprint --record`"
        )
    return json.loads(RECORD.read_text())


def same_as_stored(environ: Mapping[str, str]) -> tuple[bool, str]:
    """``(True, why)`` when this machine's fingerprint under ``environ`` equals the record."""
    record = recorded()
    steps = record["steps"]
    assert isinstance(steps, int)
    mine = measure(environ, steps)
    if mine == record["fingerprint"]:
        return True, f"this machine's arithmetic fingerprint equals the stored one ({mine})"
    return False, (
        f"this machine's arithmetic fingerprint {mine} differs from the stored machine's "
        f"{record['fingerprint']} ({record['processor']}): its libraries add in another order"
    )


def processor_name() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), else what platform says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--record", action="store_true", help="write this machine's to RECORD")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.record:
        record = {
            "fingerprint": measure(os.environ, args.steps),
            "steps": args.steps,
            "processor": processor_name(),
            "note": "the machine that stored the notebooks; python -m mmcourse.fingerprint",
        }
        RECORD.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {RECORD}: {record['fingerprint']}")
        return 0
    digest, loss = fingerprint(args.steps)
    print(digest, f"{loss:.9f}", torch.backends.cpu.get_cpu_capability())
    return 0


if __name__ == "__main__":
    sys.exit(main())
