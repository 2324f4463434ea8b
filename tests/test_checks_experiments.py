"""The self-checks of the experiment and analysis exercises (chapters 03 and 04)."""

import pytest
import torch
from torch import nn

from mmcourse.checks import ch03, ch04
from mmcourse.data.captions import ATTRIBUTES, make_mnist_captions


def test_receptive_field_accepts_the_formula_and_names_the_slips():
    assert ch04.check_receptive_field(lambda layers, k: 1 + layers * (k - 1))
    overlap = ch04.check_receptive_field(lambda layers, k: layers * k)
    assert not overlap and "overlap" in overlap.message
    centre = ch04.check_receptive_field(lambda layers, k: layers * (k - 1))
    assert not centre and "centre pixel" in centre.message
    assert "still None" in ch04.check_receptive_field(lambda layers, k: None).message
    assert not ch04.check_receptive_field(None)


@pytest.mark.parametrize(("layers", "kernel"), [(1, 3), (2, 3), (3, 5), (4, 3)])
def test_measured_receptive_field_matches_the_hand_formula(layers, kernel):
    # by hand: one layer sees k pixels, each further one adds k - 1
    assert ch04._measured_receptive_field(layers, kernel) == 1 + layers * (kernel - 1)


def _no_bn_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 28 * 28, 10))


def test_batch_norm_experiment_judges_the_verdict_by_the_learners_own_numbers():
    torch.manual_seed(0)
    images, labels = torch.randn(50, 1, 28, 28), torch.randint(0, 10, (50,))
    model = _no_bn_net()
    with torch.no_grad():
        labels[:25] = model(images[:25]).argmax(dim=1)  # half right by construction
        accuracy = (model(images).argmax(dim=1) == labels).float().mean().item()
    assert 0.45 <= accuracy <= 0.6
    assert ch04.check_batch_norm_experiment(model, images, labels, accuracy + 0.2, "helps")
    assert ch04.check_batch_norm_experiment(model, images, labels, accuracy - 0.2, "hurts")
    assert ch04.check_batch_norm_experiment(
        model, images, labels, accuracy + 0.001, "no clear difference"
    )
    wrong = ch04.check_batch_norm_experiment(model, images, labels, accuracy + 0.001, "helps")
    assert not wrong and "seed noise" in wrong.message


def test_batch_norm_experiment_finds_leftover_batch_norm_and_bad_input():
    images, labels = torch.randn(4, 1, 28, 28), torch.zeros(4, dtype=torch.long)
    with_bn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    result = ch04.check_batch_norm_experiment(with_bn, images, labels, 0.9, "helps")
    assert not result and "still has batch norm at 1" in result.message
    assert not ch04.check_batch_norm_experiment(_no_bn_net(), images, labels, 1.5, "helps")
    assert (
        "verdict"
        in ch04.check_batch_norm_experiment(_no_bn_net(), images, labels, 0.5, "yes").message
    )


def _by_hand(data):
    """Shortcuts found with plain Python loops over the layout."""
    found = set()
    for attribute, names in ATTRIBUTES.items():
        values = getattr(data.layout, attribute).tolist()
        for digit in range(10):
            seen = {
                v
                for row_d, row_v in zip(data.layout.digits.tolist(), values)
                for d, v in zip(row_d, row_v)
                if d == digit
            }
            if len(seen) == 1:
                found.add((digit, attribute, names[seen.pop()]))
    return found


def test_shortcuts_by_the_check_equal_shortcuts_by_hand():
    train = make_mnist_captions("train", n=3000)
    assert ch03._shortcuts(train) == _by_hand(train)
    assert (4, "size", "large") in _by_hand(train)  # small fours are held out


def test_check_shortcuts_accepts_a_right_function_and_explains_wrong_ones():
    train = make_mnist_captions("train", n=3000)
    assert ch03.check_shortcuts(train, _by_hand)
    none_found = ch03.check_shortcuts(train, lambda d: set()).message
    # how many there are is part of the answer: the message must not count them
    assert "missed at least one shortcut" in none_found
    assert not any(character.isdigit() for character in none_found)
    extra = ch03.check_shortcuts(train, lambda d: _by_hand(d) | {(1, "size", "small")})
    assert not extra and "not shortcuts" in extra.message
    by_index = ch03.check_shortcuts(train, lambda d: {(4, "size", 1)})
    assert not by_index and "by name" in by_index.message
    assert not ch03.check_shortcuts(train, None)


def _is_real_by_hand(a, b):
    import math
    import statistics

    error = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return abs(statistics.mean(a) - statistics.mean(b)) > 2 * error


def test_real_difference_check_accepts_the_rule_written_with_the_statistics_module():
    from mmcourse import fusion_study
    from mmcourse.checks import ch06

    assert ch06.check_real_difference(_is_real_by_hand)
    # the package's own rule agrees with the hand-written one on every case of the check
    for a, b in ch06._SE_CASES:
        assert fusion_study.real_difference(a, b) == _is_real_by_hand(a, b)


def test_real_difference_check_names_the_slips():
    import math
    import statistics

    from mmcourse.checks import ch06

    def std_not_se(a, b):
        return abs(statistics.mean(a) - statistics.mean(b)) > 2 * math.sqrt(
            statistics.variance(a) + statistics.variance(b)
        )

    def population(a, b):
        error = math.sqrt(statistics.pvariance(a) / len(a) + statistics.pvariance(b) / len(b))
        return abs(statistics.mean(a) - statistics.mean(b)) > 2 * error

    assert "spread of single runs" in ch06.check_real_difference(std_not_se).message
    assert "population variance" in ch06.check_real_difference(population).message
    assert "for every pair" in ch06.check_real_difference(lambda a, b: True).message
    assert "True or False" in ch06.check_real_difference(lambda a, b: "yes").message
    assert not ch06.check_real_difference(None)
