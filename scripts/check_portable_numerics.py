#!/usr/bin/env python3
"""Show that the portable numerics settings remove the CPU's say in the course's numbers.

A short training run (convolutions with batch norm, an LSTM, a Transformer layer, linear layers,
cross-entropy and Adam -- the operations the chapters train with -- on 1,024 bundled MNIST
digits) runs in a fresh process once per *simulated host*: each library is told to use only the
instructions a given CPU would offer (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``,
``MKL_ENABLE_INSTRUCTIONS``). The run prints a fingerprint of the trained weights.

- Without the settings, the fingerprints differ from host to host: the kernels follow the CPU.
- With the settings (mmcourse/portable.py) they are identical, whatever the host offers.

What one machine cannot simulate is another processor's MKL and oneDNN, which also decide by
vendor and caches: an Intel Xeon computes other bits than the AMD EPYC that stored the
notebooks, with the settings in force. The same training run, as ``mmcourse.fingerprint``,
therefore also decides whether the tests compare the notebooks bit for bit on a machine.

    python scripts/check_portable_numerics.py [--steps N] [--json FILE]

Exits with 1 if either statement fails. Run it with the course's Python (.venv/bin/python).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mmcourse import portable  # noqa: E402

# What each simulated CPU lets each library use. MKL picks its path by vendor too: on an AMD CPU
# it does not take its AVX2 kernels unless told to, on an Intel one it does; MKL_CBWR=AVX2
# sends it there, as an Intel AVX2 CPU would.
HOSTS: dict[str, dict[str, str]] = {
    "AVX-512 CPU": {},
    "AVX2 CPU": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "AVX2 CPU, MKL on its AVX2 path (Intel)": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "MKL_CBWR": "AVX2",
    },
}

# The training run is mmcourse.fingerprint's probe, run as a module in a fresh process.


def run_once(host: dict[str, str], portable_settings: bool, steps: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in portable.SETTINGS}
    env.pop("MKL_ENABLE_INSTRUCTIONS", None)
    env.update(host)
    if portable_settings:
        portable.apply(env, force=True)
    else:
        env[portable.SWITCH] = "0"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mmcourse.fingerprint", "--steps", str(steps)],
        env=env, capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    fingerprint, loss, capability = done.stdout.split()
    seconds = f"{time.perf_counter() - start:.1f}"
    return {"fingerprint": fingerprint, "loss": loss, "aten": capability, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=32, help="training steps (default 32)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    results: dict[str, dict[str, dict[str, str]]] = {}
    print(f"{'settings':<10} {'simulated host':<40} {'fingerprint':<17} {'final loss':<12} ATen")
    for label, use in (("none", False), ("portable", True)):
        results[label] = {}
        for host_name, host in HOSTS.items():
            row = run_once(host, use, args.steps)
            results[label][host_name] = row
            print(
                f"{label:<10} {host_name:<40} {row['fingerprint']:<17} {row['loss']:<12} {row['aten']}"
            )
    without = {row["fingerprint"] for row in results["none"].values()}
    with_settings = {row["fingerprint"] for row in results["portable"].values()}
    print(f"without the settings: {len(without)} different results from {len(HOSTS)} hosts")
    print(f"with the settings:    {len(with_settings)} result from {len(HOSTS)} hosts")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    ok = len(without) > 1 and len(with_settings) == 1
    print("OK: the settings make the numbers independent of the CPU's instruction set" if ok else
          "FAILED: see the fingerprints above")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
