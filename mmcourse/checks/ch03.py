"""Self-checks for chapter 03 (MNIST-Captions)."""

from __future__ import annotations

import torch

from mmcourse.checks._core import CheckResult, check_close
from mmcourse.data.captions import MNISTCaptions, parse_caption
from mmcourse.text import PAD_ID


def check_caption(data: MNISTCaptions, index: int, caption: str) -> CheckResult:
    """Does ``caption`` describe canvas ``index`` correctly (any of the four phrasings)?"""
    if not isinstance(caption, str) or not caption.strip():
        return CheckResult(False, "write the caption as a non-empty string")
    try:
        said = parse_caption(caption)
    except ValueError as error:
        return CheckResult(False, f"the caption does not follow the grammar: {error}")
    truth = data.descriptions(index)
    if len(said) != len(truth):
        return CheckResult(
            False, f"the canvas holds {len(truth)} digit(s), the caption names {len(said)}"
        )
    for got, want in zip(said, truth):
        if got.slot != want.slot:
            return CheckResult(False, f"there is no digit {got.slot}; look at the slots again")
        for field in ("digit", "size", "thickness", "slant"):
            if getattr(got, field) != getattr(want, field):
                return CheckResult(
                    False,
                    f"the {field} of the digit {want.slot} is {getattr(want, field)!r}, "
                    f"not {getattr(got, field)!r}",
                )
    return CheckResult(True, "every word of the caption is true")


def count_with(data: MNISTCaptions, digit: int, attribute: str, value_index: int) -> int:
    """How many canvases of ``data`` hold ``digit`` with ``attribute == value_index``."""
    values = getattr(data.layout, attribute)
    return int(((data.layout.digits == digit) & (values == value_index)).any(dim=1).sum())


def check_held_out_count(data: MNISTCaptions, answer: int) -> CheckResult:
    """Is ``answer`` the number of canvases of ``data`` that hold a thick seven?"""
    expected = count_with(data, 7, "thickness", 2)
    if not isinstance(answer, int):
        return CheckResult(False, f"answer with an int, got {type(answer).__name__}")
    if answer != expected:
        hint = "count canvases, not digits" if answer > expected else "look in every slot"
        return CheckResult(False, f"you counted {answer}, expected {expected} ({hint})")
    return CheckResult(True, f"{expected} canvases of the {data.split} split hold a thick seven")


def check_pixel_stats(data: MNISTCaptions, mean: float, std: float) -> CheckResult:
    """Are ``mean`` and ``std`` the canvases' pixel mean and standard deviation in [0, 1]?"""
    pixels = data.images.double() / 255.0
    if float(mean) > 1.5:
        return CheckResult(False, "scale the pixels to [0, 1] first (divide by 255)")
    result = check_close("mean", mean, pixels.mean().item(), atol=1e-3)
    if not result:
        return result
    return check_close("std", std, pixels.std().item(), atol=1e-3)


def check_padding(ids: torch.Tensor, answer: int) -> CheckResult:
    """Is ``answer`` the number of padding tokens in the batch ``ids``?"""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        return CheckResult(False, "ids should be the (B, T) tensor from encode_batch")
    expected = int((ids == PAD_ID).sum())
    if answer != expected:
        return CheckResult(False, f"you counted {answer} padding tokens, expected {expected}")
    return CheckResult(True, f"{expected} of {ids.numel()} positions are padding")
