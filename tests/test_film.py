"""FiLM (:mod:`mmcourse.models.film`) against its formula by hand."""

from __future__ import annotations

import pytest
import torch
from fusion_cases import DX, DY, B, D, R

from mmcourse.models.film import FiLM, FiLMFusion


def test_film_matches_the_hand_formula() -> None:
    channels, cond_dim = 3, 4
    film = FiLM(cond_dim, channels)
    with torch.no_grad():
        film.to_scale_shift.weight.normal_()
        film.to_scale_shift.bias.normal_()
    maps, cond = torch.randn(2, channels, 5, 6), torch.randn(2, cond_dim)
    out = film(maps, cond)
    w, b = film.to_scale_shift.weight, film.to_scale_shift.bias
    for n in range(2):
        for c in range(channels):
            gamma = w[c] @ cond[n] + b[c]
            beta = w[channels + c] @ cond[n] + b[channels + c]
            torch.testing.assert_close(out[n, c], gamma * maps[n, c] + beta)


def test_film_starts_as_identity_and_rejects_bad_maps() -> None:
    film = FiLM(4, 3)
    with torch.no_grad():
        film.to_scale_shift.weight.zero_()
    maps = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(film(maps, torch.randn(2, 4)), maps)
    with pytest.raises(ValueError, match=r"maps must be a float tensor of shape \(B, 3, H, W\)"):
        film(torch.randn(2, 4, 5, 5), torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"cond must be a float tensor of shape \(B, 4\)"):
        film(maps, torch.randn(2, 5))
    with pytest.raises(ValueError, match="same number of examples"):
        film(maps, torch.randn(3, 4))


def test_film_fusion_depends_on_the_question_through_film_only() -> None:
    fusion = FiLMFusion(DX, DY, grid_size=(4, 4), channels=D).eval()
    regions = torch.randn(B, R, DX)
    text = torch.randn(B, DY)
    with torch.no_grad():
        for block in fusion.blocks:
            block.film.to_scale_shift.weight.zero_()  # gamma = 1, beta = 0 for every question
    torch.testing.assert_close(fusion(regions, text), fusion(regions, torch.randn(B, DY)))
