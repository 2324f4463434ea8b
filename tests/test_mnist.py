"""mmcourse.data.mnist: finding, verifying and loading MNIST, offline."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

from mmcourse.data import mnist
from tests.conftest import full_mnist_root, needs_full_mnist


def fake_raw(tmp_path: Path, content: dict[str, bytes] | None = None) -> Path:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mnist.RAW_FILES:
        (raw / name).write_bytes((content or {}).get(name, b"x"))
    return raw


def test_read_write_idx_round_trip(tmp_path: Path) -> None:
    tensor = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    path = mnist.write_idx(tensor, tmp_path / "t-idx3-ubyte.gz")
    assert torch.equal(mnist.read_idx(path), tensor)
    # The header follows the IDX spec, written by hand here: magic 0x00000803, then dims.
    data = gzip.decompress(path.read_bytes())
    assert data[:4] == bytes([0, 0, 8, 3])
    assert [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(3)] == [5, 28, 28]
    assert data[16:] == tensor.numpy().tobytes()


def test_write_idx_is_byte_reproducible(tmp_path: Path) -> None:
    tensor = torch.arange(100, dtype=torch.uint8)
    a = mnist.write_idx(tensor, tmp_path / "a.gz").read_bytes()
    b = mnist.write_idx(tensor, tmp_path / "b.gz").read_bytes()
    assert a == b  # no timestamp or file name inside the gzip header


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="bad magic number"):
        mnist.read_idx(tmp_path / "bad")
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"12345")
    with pytest.raises(ValueError, match="truncated"):
        mnist.read_idx(short)
    wrong_type = tmp_path / "float"
    wrong_type.write_bytes(bytes([0, 0, 0x0D, 1]) + (1).to_bytes(4, "big") + b"1234")
    with pytest.raises(ValueError, match="not supported"):
        mnist.read_idx(wrong_type)


def test_missing_folder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMCOURSE_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        mnist.load_mnist("train", root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="MNIST file missing: .*train-images-idx3-ubyte"):
        mnist.load_mnist("train", root=tmp_path)


def test_environment_variable_is_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMCOURSE_DATA", str(tmp_path))
    places = mnist.candidate_roots()
    assert places[0] == ("$MMCOURSE_DATA", tmp_path)
    assert places[-1][1] == mnist.REPO_DATA
    with pytest.raises(FileNotFoundError, match="MNIST file missing"):
        mnist.find_mnist_root()


def test_truncated_and_corrupted_files_are_named(tmp_path: Path) -> None:
    raw = fake_raw(tmp_path)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte is 1 bytes.*truncated"):
        mnist.verify_raw_dir(raw)
    for name, (_, size) in mnist.RAW_FILES.items():
        if name.startswith("t10k-labels"):
            (raw / name).write_bytes(b"\0" * size)  # right size, wrong content
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte has the wrong SHA-256"):
        mnist.verify_raw_dir(raw, ["t10k-labels-idx1-ubyte"])


def test_bad_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        mnist.load_mnist("validation")
    with pytest.raises(ValueError, match="split must be one of"):
        mnist.load_subset("dev")


def test_no_download_when_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMCOURSE_DATA", str(tmp_path))
    called = []
    monkeypatch.setattr(mnist, "download_mnist", lambda root: called.append(root))
    with pytest.raises(FileNotFoundError):
        mnist.load_mnist("train")  # MMCOURSE_OFFLINE=1 in the test suite
    assert called == []


def test_failed_download_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision

    class FailingMNIST:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            raw = Path(root) / "MNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            (raw / "train-images-idx3-ubyte").write_bytes(b"half a file")
            raise OSError("connection reset")

    monkeypatch.setattr(torchvision.datasets, "MNIST", FailingMNIST)
    with pytest.raises(RuntimeError, match="Nothing was written to"):
        mnist.download_mnist(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no partial file, not even an empty folder


def test_successful_download_is_verified_and_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in for torchvision that 'downloads' the real files from the shared folder."""
    source = full_mnist_root()
    if source is None:
        pytest.skip("needs the full raw MNIST (set MMCOURSE_DATA) to stand in for a download")
    import torchvision

    class CopyingMNIST:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            raw = Path(root) / "MNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            for name in mnist.RAW_FILES:
                if name.startswith("train" if train else "t10k"):
                    shutil.copy(source / "MNIST" / "raw" / name, raw / name)

    monkeypatch.setattr(torchvision.datasets, "MNIST", CopyingMNIST)
    mnist.download_mnist(tmp_path)
    mnist.verify_raw_dir(tmp_path / "MNIST" / "raw")
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(mnist.RAW_FILES)
    assert [p.name for p in tmp_path.iterdir()] == ["MNIST"]


def test_subset_shapes_balance_and_checksums() -> None:
    images, labels = mnist.load_subset("train")
    assert images.shape == (10_000, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    assert torch.bincount(labels, minlength=10).tolist() == [1000] * 10
    test_images, test_labels = mnist.load_subset("test")
    assert test_images.shape == (2_000, 28, 28)
    assert torch.bincount(test_labels, minlength=10).tolist() == [200] * 10
    sums = dict(
        reversed(line.split())
        for line in (mnist.SUBSET_DIR / "SHA256SUMS").read_text().splitlines()
    )
    for name, digest in sums.items():
        assert hashlib.sha256((mnist.SUBSET_DIR / name).read_bytes()).hexdigest() == digest
    size = sum(f.stat().st_size for f in mnist.SUBSET_DIR.iterdir())
    assert size <= 3 * 1024 * 1024


def test_corrupted_subset_is_detected(tmp_path: Path) -> None:
    copy = tmp_path / "subset"
    shutil.copytree(mnist.SUBSET_DIR, copy)
    target = copy / "train-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-5] + b"xxxxx")
    with pytest.raises(ValueError, match="does not match its SHA-256"):
        mnist.load_subset("train", path=copy)
    with pytest.raises(FileNotFoundError, match="bundled MNIST subset is missing"):
        mnist.load_subset("train", path=tmp_path / "empty")


def test_load_digits_fast_profile_uses_subset() -> None:
    images, labels = mnist.load_digits("test", profile="fast")
    assert len(images) == 2_000


def test_to_float() -> None:
    images = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    out = mnist.to_float(images, normalize=False)
    assert out.shape == (1, 1, 1, 2) and out.tolist() == [[[[0.0, 1.0]]]]
    norm = mnist.to_float(images)
    assert norm[0, 0, 0, 1].item() == pytest.approx((1 - 0.1307) / 0.3081)
    with pytest.raises(ValueError, match="expects uint8"):
        mnist.to_float(images.float())
    with pytest.raises(ValueError, match=r"shape \(N, H, W\)"):
        mnist.to_float(images[0])


@needs_full_mnist
def test_full_mnist_matches_torchvision_and_known_statistics() -> None:
    import torchvision

    root = full_mnist_root()
    images, labels = mnist.load_mnist("train", root=root)
    assert images.shape == (60_000, 28, 28) and labels.shape == (60_000,)
    reference = torchvision.datasets.MNIST(str(root), train=True, download=False)
    assert torch.equal(images, reference.data)
    assert torch.equal(labels, reference.targets)
    pixels = images.float() / 255
    assert pixels.mean().item() == pytest.approx(mnist.MEAN, abs=5e-5)
    assert pixels.std().item() == pytest.approx(mnist.STD, abs=5e-5)
    test_images, _ = mnist.load_mnist("test", root=root)
    assert test_images.shape == (10_000, 28, 28)


@needs_full_mnist
def test_full_mnist_found_through_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMCOURSE_DATA", str(full_mnist_root()))
    assert mnist.find_mnist_root() == full_mnist_root()
    assert os.environ["MMCOURSE_DATA"]
