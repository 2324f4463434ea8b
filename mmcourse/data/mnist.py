"""Find, verify and load MNIST -- offline first.

MNIST is read from torchvision's layout, ``<root>/MNIST/raw/``, looking in this order:

1. the ``root`` the caller passes,
2. the folder in the environment variable ``MMCOURSE_DATA``,
3. the repository's ``data/`` folder,

and only then, if allowed, downloading it with torchvision. Every raw file's SHA-256 is checked,
so a missing, truncated or corrupted file gives an error that names the file and the fix.

The course also ships a class-balanced subset (10,000 training and 2,000 test digits) in
``data/mnist-subset/``; the ``fast`` profile always uses it (see :func:`load_digits`).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch

from mmcourse import config
from mmcourse._validate import check_choice, require

REPO_DATA = Path(__file__).resolve().parents[2] / "data"
"""The repository's ``data/`` folder (where the bundled subset lives)."""

SUBSET_DIR = REPO_DATA / "mnist-subset"

RAW_FILES: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47_040_016,
    ),
    "train-labels-idx1-ubyte": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        60_008,
    ),
    "t10k-images-idx3-ubyte": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        7_840_016,
    ),
    "t10k-labels-idx1-ubyte": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        10_008,
    ),
}
"""The four original MNIST files: name -> (SHA-256, size in bytes)."""

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLITS = tuple(SPLIT_FILES)

MEAN, STD = 0.1307, 0.3081
"""Mean and standard deviation of MNIST's training pixels (scaled to [0, 1])."""

_IDX_DTYPES = {0x08: torch.uint8}


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def candidate_roots(root: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The places searched for ``MNIST/raw/``, in order, each with where it came from."""
    places: list[tuple[str, Path]] = []
    if root is not None:
        places.append(("the root argument", Path(root)))
    env = os.environ.get("MMCOURSE_DATA")
    if env:
        places.append(("$MMCOURSE_DATA", Path(env)))
    places.append(("the repository's data/ folder", REPO_DATA))
    return places


def _fix_hint(name: str) -> str:
    return (
        f"Delete it and copy the original '{name}' from MNIST into that folder, "
        "or call load_mnist(download=True) on a machine with internet access."
    )


def verify_raw_dir(raw_dir: str | os.PathLike, names: Iterable[str] | None = None) -> Path:
    """Check that ``raw_dir`` holds the original MNIST files (size and SHA-256).

    Raises:
        FileNotFoundError: a file is missing (the message names it and the fix).
        ValueError: a file is truncated or corrupted (likewise).
    """
    raw = Path(raw_dir)
    for name in names if names is not None else RAW_FILES:
        expected_sha, expected_size = RAW_FILES[name]
        path = raw / name
        if not path.is_file():
            raise FileNotFoundError(
                f"MNIST file missing: {path}. Copy the four uncompressed MNIST files "
                f"into {raw}, set MMCOURSE_DATA to a folder holding MNIST/raw/, "
                "or call load_mnist(download=True) with internet access."
            )
        size = path.stat().st_size
        if size != expected_size:
            raise ValueError(
                f"MNIST file {path} is {size:,} bytes, expected {expected_size:,} "
                f"(truncated or not the original). {_fix_hint(name)}"
            )
        if sha256_of(path) != expected_sha:
            raise ValueError(
                f"MNIST file {path} has the wrong SHA-256 (corrupted). {_fix_hint(name)}"
            )
    return raw


def _has_all_files(raw_dir: Path) -> bool:
    return all((raw_dir / name).is_file() for name in RAW_FILES)


def find_mnist_root(root: str | os.PathLike | None = None) -> Path:
    """The first candidate folder (see :func:`candidate_roots`) with all of ``MNIST/raw/``.

    A folder given explicitly (argument or ``MMCOURSE_DATA``) that lacks the files is an error,
    not something to skip silently.
    """
    searched = []
    for origin, place in candidate_roots(root):
        raw = place / "MNIST" / "raw"
        if _has_all_files(raw):
            return place
        if origin != "the repository's data/ folder":
            if not place.is_dir():
                raise FileNotFoundError(f"{origin} points to {place}, which is not a folder")
            verify_raw_dir(raw)  # raises, naming the first missing file
        searched.append(f"{raw} ({origin})")
    raise FileNotFoundError(
        "Full MNIST not found. Looked in: " + "; ".join(searched) + ". Set MMCOURSE_DATA to a "
        "folder that holds MNIST/raw/ with the four uncompressed files, or call "
        "load_mnist(download=True) with internet access."
    )


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an IDX file (MNIST's format; ``.gz`` or uncompressed) into a uint8 tensor."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtype_code, ndim = data[2], data[3]
    if dtype_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: IDX element type 0x{dtype_code:02x} is not supported")
    header = 4 + 4 * ndim
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    count = 1
    for dim in shape:
        count *= dim
    if len(data) - header != count:
        raise ValueError(
            f"{path}: header promises {count:,} values of shape {shape}, "
            f"file holds {len(data) - header:,} (truncated?)"
        )
    values = torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8)
    return values.reshape(shape)


def write_idx(tensor: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write a uint8 tensor as a gzip-compressed IDX file, byte for byte reproducibly."""
    require(tensor.dtype == torch.uint8, f"write_idx expects a uint8 tensor, got {tensor.dtype}")
    path = Path(path)
    header = bytes([0, 0, 0x08, tensor.dim()]) + b"".join(
        int(d).to_bytes(4, "big") for d in tensor.shape
    )
    payload = header + tensor.contiguous().numpy().tobytes()
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as handle,
    ):
        handle.write(payload)
    return path


def _download_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    offline = os.environ.get("MMCOURSE_OFFLINE", "") not in ("", "0")
    return not offline and not os.environ.get("CI")


def download_mnist(root: str | os.PathLike) -> Path:
    """Download MNIST with torchvision into ``<root>/MNIST/raw/``, verified, all or nothing.

    The files are fetched into a temporary folder beside the target, checked, and only then moved
    into place, so a failed or interrupted download leaves no partial file behind.
    """
    import torchvision

    root = Path(root)
    target = root / "MNIST" / "raw"
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mnist-download-", dir=root))
    try:
        try:
            for train in (True, False):
                torchvision.datasets.MNIST(root=str(staging), train=train, download=True)
        except Exception as error:  # network errors come in many types
            raise RuntimeError(
                f"Downloading MNIST failed ({error}). Nothing was written to {target}. "
                "Without internet, copy the four MNIST files there or set MMCOURSE_DATA."
            ) from error
        fetched = staging / "MNIST" / "raw"
        verify_raw_dir(fetched)
        target.mkdir(parents=True, exist_ok=True)
        for name in RAW_FILES:
            os.replace(fetched / name, target / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def load_mnist(
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load full MNIST: ``images`` uint8 ``(N, 28, 28)`` and ``labels`` int64 ``(N,)``.

    Args:
        split: ``"train"`` (60,000 digits) or ``"test"`` (10,000).
        root: a folder holding ``MNIST/raw/``; else ``MMCOURSE_DATA``, else the repo's ``data/``.
        download: allow a torchvision download if MNIST is nowhere to be found. ``None`` allows
            it except when ``MMCOURSE_OFFLINE=1`` or ``CI`` is set (tests and CI never download).
    """
    check_choice(split, "MNIST split", SPLITS)
    try:
        found = find_mnist_root(root)
    except FileNotFoundError:
        if not _download_allowed(download):
            raise
        found = download_mnist(candidate_roots(root)[0][1])
    raw = found / "MNIST" / "raw"
    image_file, label_file = SPLIT_FILES[split]
    verify_raw_dir(raw, (image_file, label_file))
    images = read_idx(raw / image_file)
    labels = read_idx(raw / label_file).long()
    return images, labels


def load_subset(
    split: str = "train", path: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the bundled subset: ``images`` uint8 ``(N, 28, 28)``, ``labels`` int64 ``(N,)``.

    10,000 training digits (1,000 a class) and 2,000 test digits (200 a class); the files'
    SHA-256 sums are checked against ``SHA256SUMS`` beside them.
    """
    check_choice(split, "MNIST split", SPLITS)
    folder = Path(path) if path is not None else SUBSET_DIR
    sums_file = folder / "SHA256SUMS"
    if not sums_file.is_file():
        raise FileNotFoundError(
            f"The bundled MNIST subset is missing: no {sums_file}. It ships with the course's "
            "repository; rebuild it with `python scripts/build_mnist_subset.py`."
        )
    sums = dict(line.split()[::-1] for line in sums_file.read_text().splitlines() if line.strip())
    tensors = []
    for name in SPLIT_FILES[split]:
        file = folder / f"{name}.gz"
        if not file.is_file():
            raise FileNotFoundError(f"Bundled subset file missing: {file}")
        if sha256_of(file) != sums.get(file.name):
            raise ValueError(
                f"Bundled subset file {file} does not match its SHA-256 in {sums_file}; "
                "restore it with git or rebuild it with `python scripts/build_mnist_subset.py`."
            )
        tensors.append(read_idx(file))
    return tensors[0], tensors[1].long()


def load_digits(
    split: str = "train",
    profile: str | None = None,
    root: str | os.PathLike | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The digits a chapter should use: the bundled subset in ``fast``, full MNIST in ``full``."""
    check_choice(split, "MNIST split", SPLITS)
    if config.pick(fast="fast", full="full", profile=profile) == "fast":
        return load_subset(split)
    return load_mnist(split, root=root)


def to_float(
    images: torch.Tensor, normalize: bool = True, mean: float = MEAN, std: float = STD
) -> torch.Tensor:
    """uint8 ``(N, H, W)`` images -> float ``(N, 1, H, W)``, scaled to [0, 1] and, by default,
    standardised as ``(x - mean) / std`` (MNIST's training statistics unless given)."""
    require(images.dtype == torch.uint8, f"to_float expects uint8 images, got {images.dtype}")
    if images.dim() != 3:
        raise ValueError(f"to_float expects images of shape (N, H, W), got {tuple(images.shape)}")
    out = images.unsqueeze(1).float().div_(255.0)
    return (out - mean) / std if normalize else out
