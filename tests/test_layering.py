"""The package's layers (CONTRIBUTING.md, "Layout"): a module imports only from its own layer or
the layers below it. Each module's imports are read with ``ast`` (also those inside functions
and ``if TYPE_CHECKING:`` blocks), without importing anything."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmcourse"

LAYERS = {
    0: ["mmcourse", "_validate", "config", "modes", "portable", "results", "utils"],
    1: ["vocab", "data.*", "fingerprint"],
    2: ["losses", "metrics", "caption_metrics"],
    3: ["models.*"],
    4: ["train", "callbacks", "checkpoints", "decode", "parallel"],
    5: [
        "digits",
        "captioning",
        "fusion_study",
        "joint",
        "article",
        "concepts",
        "chapters",
        "diagrams",
        "viz",
        "doctor",
        "retrieval.*",
        "deploy.*",
        "casestudy.*",
        "robust.*",
        "fewlabels.*",
        "distributed.*",
    ],
    6: ["checks.*", "explorers.*"],
}
"""Layer of each module, as in CONTRIBUTING.md's picture (``data.*``: the whole sub-package)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    """The layer of ``mmcourse.x.y`` (``None`` if the picture does not place it)."""
    short = module.removeprefix("mmcourse.") if module != "mmcourse" else "mmcourse"
    for layer, patterns in LAYERS.items():
        for pattern in patterns:
            if pattern.endswith(".*"):
                package = pattern[:-2]
                if short == package or short.startswith(package + "."):
                    return layer
            elif short == pattern:
                return layer
    return None


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of an ``mmcourse`` module in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("mmcourse")]
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmcourse")
        ):
            for alias in node.names:  # `from mmcourse import viz` imports the module mmcourse.viz
                target = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / target.replace(".", "/")).with_suffix(".py").is_file()
                is_package = (PACKAGE.parent / target.replace(".", "/") / "__init__.py").is_file()
                found.append((node.lineno, target if is_module or is_package else node.module))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_down_the_layers(path: Path) -> None:
    name = module_name(path)
    own = layer_of(name)
    assert own is not None, (
        f"{name} is in no layer: add it to LAYERS in tests/test_layering.py and to the picture "
        "in CONTRIBUTING.md"
    )
    upward = [
        f"line {line}: imports {target} (layer {layer_of(target)}) from layer {own}"
        for line, target in imported_modules(path)
        if layer_of(target) is None or layer_of(target) > own
    ]
    assert not upward, f"{name} imports against the layers: " + "; ".join(upward)


def test_the_checker_catches_an_upward_import(tmp_path: Path) -> None:
    """A model importing the training loop is refused (the test above would fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("from mmcourse.train import fit\nfrom mmcourse import viz\n")
    targets = [target for _, target in imported_modules(bad)]
    assert targets == ["mmcourse.train", "mmcourse.viz"]
    assert [layer_of(t) for t in targets] == [4, 5]
    assert layer_of("mmcourse.models.fusion") == 3 < layer_of("mmcourse.train")
    assert layer_of("mmcourse.data.captions") == 1 and layer_of("mmcourse.nowhere") is None


def test_the_picture_in_contributing_names_every_layer() -> None:
    picture = (PACKAGE.parent / "CONTRIBUTING.md").read_text(encoding="utf-8")
    for patterns in LAYERS.values():
        for pattern in patterns:
            if pattern != "mmcourse":
                assert f"`{pattern}`" in picture, f"CONTRIBUTING.md's picture lacks {pattern}"
