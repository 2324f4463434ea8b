"""Adversarial examples in the L-infinity ball: each pixel moves by at most ``epsilon``.

- :func:`fgsm` -- the fast gradient sign method (Goodfellow et al., 2015): one step of size
  ``epsilon`` along the sign of the loss's gradient;
- :func:`pgd` -- projected gradient descent (Madry et al., 2018): from a random point of the
  ball, ``steps`` sign steps, each followed by a projection back into the ball;
- :func:`random_sign_noise` -- the control: a random corner of the same ball, no gradient;
- :func:`fast_adversarial` -- the training example of fast adversarial training (Wong, Rice
  and Kolter, 2020): a random start, one FGSM step of ``1.25 epsilon``, back into the ball;
- :func:`attack_accuracy` -- a model's accuracy on the attacked (or noised) images, batch by
  batch;
- :func:`robust_accuracy` -- the share of images that survive PGD from every one of several
  random starts (the number to report for an adversarially trained model).

Images are floats in ``[low, high]`` (``[0, 1]`` for pixels), ``(B, C, H, W)`` or any shape the
model reads, and the attacked images stay in that range. A model that standardises its input
should take raw pixels, e.g. ``nn.Sequential(torchvision.transforms.Normalize(mean, std),
model)``, so that ``epsilon`` is in pixel units. The model is put in eval mode while attacked
and every part gets its own mode back afterwards.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._validate import (
    Dims,
    check_choice,
    check_int,
    check_module,
    check_nonnegative,
    check_tensor,
    describe_tensor,
    require,
)
from mmcourse.modes import eval_mode

__all__ = [
    "ATTACKS",
    "attack_accuracy",
    "fast_adversarial",
    "fgsm",
    "pgd",
    "random_sign_noise",
    "robust_accuracy",
]

ATTACKS = ("fgsm", "pgd", "noise")


def _check_images(images: object) -> torch.Tensor:
    check_tensor(images, "images", "of floats (B, ...)")
    require(
        images.is_floating_point() and images.dim() >= 2 and len(images) > 0,  # type: ignore[union-attr]
        f"images must be a non-empty float tensor (B, ...), got {describe_tensor(images)}",
    )
    return images  # type: ignore[return-value]


def _check(model: object, images: object, target: object, epsilon: object) -> None:
    check_module(model)
    Dims().bind("B", len(_check_images(images)), "images").indices(target, "target", "B")
    check_nonnegative(epsilon, "epsilon")


def _loss_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), target, reduction="sum")  # sum: each image its own step
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(
    model: nn.Module,
    images: torch.Tensor,
    target: torch.Tensor,
    epsilon: float,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """``images + epsilon * sign(d loss / d images)``, clipped to ``bounds``."""
    _check(model, images, target, epsilon)
    with eval_mode(model):
        grad = _loss_gradient(model, images, target)
    return (images + epsilon * grad.sign()).clamp(*bounds).detach()


def pgd(
    model: nn.Module,
    images: torch.Tensor,
    target: torch.Tensor,
    epsilon: float,
    steps: int = 40,
    step_size: float | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
) -> torch.Tensor:
    """Madry et al.'s attack: a uniform random start in the ``epsilon`` ball, then ``steps``
    steps of ``step_size`` (default ``2.5 * epsilon / steps``, their rule) along the gradient's
    sign, each projected back into the ball and ``bounds``."""
    _check(model, images, target, epsilon)
    check_int(steps, "steps")
    step = 2.5 * epsilon / steps if step_size is None else check_nonnegative(step_size, "step_size")
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    start = (torch.rand(images.shape, generator=generator) * 2 - 1).to(images)
    x = (images + epsilon * start).clamp(*bounds)
    with eval_mode(model):
        for _ in range(steps):
            x = x + step * _loss_gradient(model, x, target).sign()
            x = torch.minimum(torch.maximum(x, images - epsilon), images + epsilon)
            x = x.clamp(*bounds).detach()
    return x


def random_sign_noise(
    images: torch.Tensor, epsilon: float, bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0
) -> torch.Tensor:
    """Each pixel moved by ``+epsilon`` or ``-epsilon`` at random: as far as FGSM moves it, in a
    direction that ignores the model (the control for an attack)."""
    _check_images(images)
    check_nonnegative(epsilon, "epsilon")
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    signs = torch.randint(0, 2, images.shape, generator=generator).to(images) * 2 - 1
    return (images + epsilon * signs).clamp(*bounds)


def fast_adversarial(
    model: nn.Module,
    images: torch.Tensor,
    target: torch.Tensor,
    epsilon: float,
    generator: torch.Generator,
    step_factor: float = 1.25,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """The example fast adversarial training trains on (Wong, Rice and Kolter, 2020): a
    uniform random point of the ``epsilon`` ball, one sign step of ``step_factor * epsilon``
    from there, projected back into the ball and ``bounds``.

    Unlike the attacks above, the model keeps its mode: called inside a training step, batch
    norm reads the batch, as in the paper. ``generator`` draws the random starts, so a seeded
    generator makes training reproducible."""
    _check(model, images, target, epsilon)
    check_nonnegative(step_factor, "step_factor")
    require(
        isinstance(generator, torch.Generator),
        f"generator must be a torch.Generator, got {type(generator).__name__}",
    )
    start = (torch.rand(images.shape, generator=generator) * 2 - 1).to(images) * epsilon
    x = (images + start).clamp(*bounds)
    step = x - images + step_factor * epsilon * _loss_gradient(model, x, target).sign()
    return (images + step.clamp(-epsilon, epsilon)).clamp(*bounds).detach()


@torch.no_grad()
def _correct(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> int:
    with eval_mode(model):
        return int((model(x).argmax(dim=1) == target).sum())


def attack_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    target: torch.Tensor,
    epsilon: float,
    attack: str = "pgd",
    steps: int = 40,
    batch_size: int = 500,
    seed: int = 0,
) -> float:
    """Accuracy of ``model`` on ``images`` after ``attack`` (``"fgsm"``, ``"pgd"`` or the control
    ``"noise"``) of size ``epsilon``; epsilon 0 gives the clean accuracy (without running the
    attack, which could not move a pixel). Pixels in ``[0, 1]``."""
    _check(model, images, target, epsilon)
    check_choice(attack, "attack", ATTACKS)
    check_int(batch_size, "batch_size")
    correct = 0
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size], target[start : start + batch_size]
        if epsilon == 0:
            pass  # every attack leaves the images as they are: no gradients to compute
        elif attack == "fgsm":
            x = fgsm(model, x, y, epsilon)
        elif attack == "pgd":
            x = pgd(model, x, y, epsilon, steps=steps, seed=seed + start)
        else:
            x = random_sign_noise(x, epsilon, seed=seed + start)
        correct += _correct(model, x, y)
    return correct / len(images)


def robust_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    target: torch.Tensor,
    epsilon: float,
    steps: int = 40,
    restarts: int = 1,
    batch_size: int = 500,
) -> float:
    """The share of ``images`` that ``model`` still reads right after PGD from **each** of
    ``restarts`` random starts: an image counts only if no restart fools the model, so the
    figure can only fall as restarts are added. Restart ``r`` of the batch that begins at
    image ``i`` draws its start with seed ``r * len(images) + i``: every start differs."""
    _check(model, images, target, epsilon)
    check_int(restarts, "restarts")
    check_int(batch_size, "batch_size")
    survived = 0
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size], target[start : start + batch_size]
        alive = torch.ones(len(x), dtype=torch.bool)
        for restart in range(restarts):
            attacked = pgd(model, x, y, epsilon, steps=steps, seed=restart * len(images) + start)
            with torch.no_grad(), eval_mode(model):
                alive &= model(attacked).argmax(dim=1) == y
        survived += int(alive.sum())
    return survived / len(images)
