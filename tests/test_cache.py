"""The disk cache of generated splits (mmcourse.data.cache), in a temporary folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from mmcourse.data import cache
from mmcourse.data import captions as C


@pytest.fixture
def folder(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path))
    return tmp_path


def test_fingerprint_sees_every_part(tmp_path: Path) -> None:
    code = tmp_path / "code.py"
    code.write_text("x = 1")
    base = cache.fingerprint(torch.zeros(3), "train", 5, code)
    assert base == cache.fingerprint(torch.zeros(3), "train", 5, code)
    assert base != cache.fingerprint(torch.zeros(4), "train", 5, code)  # shape
    assert base != cache.fingerprint(torch.zeros(3, dtype=torch.uint8), "train", 5, code)
    assert base != cache.fingerprint(torch.tensor([0.0, 0.0, 1.0]), "train", 5, code)  # bytes
    assert base != cache.fingerprint(torch.zeros(3), "val", 5, code)
    code.write_text("x = 2")
    assert base != cache.fingerprint(torch.zeros(3), "train", 5, code)  # the code changed


def test_made_once_then_read_back(folder: Path) -> None:
    calls = []

    def make() -> dict[str, object]:
        calls.append(1)
        return {"images": torch.arange(6).view(2, 3), "text": "a\tb"}

    first = cache.cached("demo", "ab" * 32, make)
    second = cache.cached("demo", "ab" * 32, make)
    assert len(calls) == 1 and second["text"] == "a\tb"
    assert torch.equal(first["images"], second["images"])
    assert [p.name for p in folder.iterdir()] == ["demo-" + "ab" * 12 + ".pt"]


def test_a_damaged_file_is_made_again(folder: Path) -> None:
    (folder / ("demo-" + "cd" * 12 + ".pt")).write_bytes(b"not a torch file")
    assert cache.cached("demo", "cd" * 32, lambda: [1, 2]) == [1, 2]
    assert cache.cached("demo", "cd" * 32, lambda: [3]) == [1, 2]  # now stored whole


def test_off_generates_every_time(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MMCOURSE_CACHE", "off")
    assert cache.cache_dir() is None
    assert cache.cached("demo", "ef" * 32, lambda: 1) == 1
    assert cache.cached("demo", "ef" * 32, lambda: 2) == 2


def test_an_unwritable_folder_is_skipped(monkeypatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("MMCOURSE_CACHE", str(blocker / "cache"))  # under a file: cannot exist
    assert cache.cached("demo", "01" * 32, lambda: 7) == 7


def test_a_cached_split_is_the_generated_one_bit_for_bit(folder: Path) -> None:
    images, labels = C.digit_pool("val", "fast")
    fresh = C.generate(300, "val", images, labels, seed=4)
    for _ in range(2):  # made, then read back
        data = C.make_mnist_captions("val", n=300, seed=4, profile="fast")
        assert torch.equal(data.images, fresh.images)
        assert torch.equal(data.source, fresh.source) and torch.equal(
            data.centers.isnan(), fresh.centers.isnan()
        )
        assert torch.equal(data.pen_width.nan_to_num(), fresh.pen_width.nan_to_num())
        for name in C.Layout.fields():
            assert torch.equal(getattr(data.layout, name), getattr(fresh.layout, name))
        assert data.captions == fresh.captions and data.qa == fresh.qa
    assert len(list(folder.iterdir())) == 1
    other = C.make_mnist_captions("val", n=300, seed=5, profile="fast")
    assert not torch.equal(other.images, fresh.images) and len(list(folder.iterdir())) == 2


def test_only_the_most_recently_used_files_of_a_name_are_kept(folder: Path) -> None:
    for index in range(cache.KEEP + 2):
        cache.cached("demo", f"{index:02d}" * 32, lambda index=index: index)
        stamp = time.time() - 1000 + index  # each file used later than the one before
        os.utime(folder / f"demo-{f'{index:02d}' * 12}.pt", (stamp, stamp))
    cache.cached("other", "ff" * 32, lambda: 0)
    cache.cached("demo", "99" * 32, lambda: -1)  # a new one: the two oldest go
    names = sorted(p.name for p in folder.glob("demo-*.pt"))
    assert len(names) == cache.KEEP
    assert "demo-" + "00" * 12 + ".pt" not in names and "demo-" + "99" * 12 + ".pt" in names
    assert (folder / ("other-" + "ff" * 12 + ".pt")).exists()
