"""mmcourse.retrieval against hand-built layouts, hand-computed recalls, the dataset's own
renderer and fake models whose embeddings are constructed so that every answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from mmcourse import losses as L
from mmcourse import retrieval as R
from mmcourse.data import captions as C
from mmcourse.data import mnist
from mmcourse.data.pen import PEN_BANDS
from mmcourse.models.dual import DualEncoder
from mmcourse.vocab import Vocabulary, tokenize

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> C.MNISTCaptions:
    """96 canvases from the bundled training digits: 64 of them hold a single digit, so that
    some descriptions repeat (with different digit images)."""
    images, labels = mnist.load_subset("train")
    parts = [
        C.generate(64, "train", images, labels, seed=3, max_digits=1),
        C.generate(32, "train", images, labels, seed=4),
    ]
    return C.MNISTCaptions(
        "train",
        torch.cat([p.images for p in parts]),
        C.Layout.cat([p.layout for p in parts]),
        torch.cat([p.centers for p in parts]),
        torch.cat([p.source for p in parts]),
        torch.cat([p.pen_width for p in parts]),
        [c for p in parts for c in p.captions],
        [q for p in parts for q in p.qa],
    )


@pytest.fixture(scope="module")
def vocab(data: C.MNISTCaptions) -> Vocabulary:
    prompts = [p for d in range(10) for p in R.digit_prompts(d)]
    return Vocabulary.build([c for cs in data.captions for c in cs] + prompts)


def layout(rows: list[list[tuple[int, int, int, int] | None]]) -> C.Layout:
    """A Layout from rows of three slots, each ``(digit, size, thickness, slant)`` or None."""
    fields = [[[-1] * 3 for _ in rows] for _ in range(4)]
    for i, row in enumerate(rows):
        for slot, item in enumerate(row):
            if item is not None:
                for f in range(4):
                    fields[f][i][slot] = item[f]
    return C.Layout(*(torch.tensor(f) for f in fields))


# ----------------------------------------------------------------------------------------------
# description ids


def test_description_ids_on_hand_built_layouts() -> None:
    seven = (7, 1, 1, 1)
    rows = [
        [seven, None, None],  # 0
        [None, seven, None],  # 1: same digit, another slot
        [seven, None, None],  # 0 again
        [(7, 1, 2, 1), None, None],  # 2: thicker
        [seven, None, (2, 0, 1, 0)],  # 3: a second digit
        [seven, None, (2, 0, 1, 0)],  # 3 again
        [(7, 0, 1, 1), None, None],  # 4: smaller
    ]
    ids = R.description_ids(layout(rows))
    assert ids.dtype == torch.long
    assert ids.tolist() == [0, 1, 0, 2, 3, 3, 4]


def test_description_ids_ignore_what_an_empty_slot_holds() -> None:
    a = layout([[(3, 0, 0, 0), None, None], [(3, 0, 0, 0), None, None]])
    a.size[1, 2] = 1  # junk in an empty slot: still the same description
    assert R.description_ids(a).tolist() == [0, 0]


def test_description_ids_match_a_brute_force_comparison(data: C.MNISTCaptions) -> None:
    ids = R.description_ids(data)
    assert R.description_ids(data.layout).tolist() == ids.tolist()
    items = [data.items(i) for i in range(len(data))]
    for i in range(len(data)):
        for j in range(len(data)):
            assert (ids[i] == ids[j]) == (items[i] == items[j])
            assert (items[i] == items[j]) == (data.captions[i] == data.captions[j])
    assert len(set(ids.tolist())) < len(data)  # the fixture does hold duplicates
    first = [ids.tolist().index(k) for k in range(int(ids.max()) + 1)]
    assert first == sorted(first)  # numbered in order of first appearance


def test_description_ids_errors() -> None:
    good = layout([[(1, 0, 0, 0), None, None]])
    with pytest.raises(TypeError, match="data must be an MNISTCaptions split or a Layout"):
        R.description_ids(torch.zeros(3, 12))
    with pytest.raises(ValueError, match=r"layout.digits must be an integer tensor of shape"):
        R.description_ids(C.Layout(good.digits.float(), good.size, good.thickness, good.slant))
    with pytest.raises(
        ValueError, match=r"layout.slant must be an integer tensor of shape \(1, 3\)"
    ):
        R.description_ids(C.Layout(good.digits, good.size, good.thickness, torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="holds no canvas"):
        R.description_ids(C.Layout(*(torch.zeros(0, 3, dtype=torch.long),) * 4))


# ----------------------------------------------------------------------------------------------
# recall from a similarity matrix


# Three canvases, canvases 0 and 1 share a description; one caption each (caption i belongs to
# canvas i). Rows: captions, columns: canvases.
SIMILARITY = torch.tensor([[0.2, 0.9, 0.1], [0.3, 0.8, 0.5], [0.7, 0.1, 0.6]])
OWNER = torch.tensor([0, 1, 2])
IDS = torch.tensor([5, 5, 9])


def test_recall_report_by_hand() -> None:
    report = R.recall_report(SIMILARITY, OWNER, IDS, ks=(1, 2))
    # text -> image, row by row:
    #   caption 0: canvas 1 (0.9) beats its own canvas 0 -> instance rank 2; but canvas 1 has
    #              the same description -> description rank 1
    #   caption 1: its canvas 1 is best                  -> ranks 1 and 1
    #   caption 2: canvas 0 (0.7) beats canvas 2 (0.6)   -> ranks 2 and 2
    assert report["text_to_image"]["instance"] == pytest.approx({1: 1 / 3, 2: 1.0})
    assert report["text_to_image"]["description"] == pytest.approx({1: 2 / 3, 2: 1.0})
    # image -> text, column by column:
    #   canvas 0 (0.2, 0.3, 0.7): own caption 0 is third -> instance rank 3; captions 0 and 1
    #            describe it, the best of them (0.3) is behind caption 2 -> description rank 2
    #   canvas 1 (0.9, 0.8, 0.1): own caption 1 behind caption 0 -> rank 2; description rank 1
    #   canvas 2 (0.1, 0.5, 0.6): own caption 2 is best -> ranks 1 and 1
    assert report["image_to_text"]["instance"] == pytest.approx({1: 1 / 3, 2: 2 / 3})
    assert report["image_to_text"]["description"] == pytest.approx({1: 2 / 3, 2: 1.0})


def test_recall_report_with_several_captions_per_canvas() -> None:
    # two canvases (different descriptions), two captions each: 0, 1 -> canvas 0; 2, 3 -> 1
    similarity = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.4], [0.6, 0.5]])
    report = R.recall_report(similarity, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1]), (1,))
    # text -> image: captions 0, 2 right, 1, 3 wrong
    assert report["text_to_image"]["instance"][1] == pytest.approx(0.5)
    # image -> text: canvas 0's best caption is caption 0 (its own); canvas 1's is caption 1
    # (0.8, not its own: its own score 0.4 and 0.5)
    assert report["image_to_text"]["instance"][1] == pytest.approx(0.5)
    assert report["image_to_text"]["description"][1] == pytest.approx(0.5)


def test_recall_report_errors() -> None:
    with pytest.raises(
        ValueError, match=r"caption_owner must be an integer tensor of shape \(3,\)"
    ):
        R.recall_report(SIMILARITY, torch.tensor([0, 1]), IDS)
    with pytest.raises(ValueError, match=r"ids must be an integer tensor of shape \(3,\)"):
        R.recall_report(SIMILARITY, OWNER, IDS.float())
    with pytest.raises(ValueError, match="caption_owner must hold canvas indices in 0..2"):
        R.recall_report(SIMILARITY, torch.tensor([0, 1, 3]), IDS)
    with pytest.raises(ValueError, match=r"canvases \[2\] have none"):
        R.recall_report(SIMILARITY, torch.tensor([0, 1, 1]), IDS)
    with pytest.raises(ValueError, match="every k"):
        R.recall_report(SIMILARITY, OWNER, IDS, ks=(4,))


# ----------------------------------------------------------------------------------------------
# fake models with known embeddings


class DescriptionOracle(nn.Module):
    """Embeds a canvas and a caption as the one-hot of their description: it recognises a
    canvas by looking it up among the gallery's images, and a caption by its words."""

    def __init__(self, data: C.MNISTCaptions, vocab: Vocabulary) -> None:
        super().__init__()
        ids = R.description_ids(data).tolist()
        self.width = max(ids) + 1
        self.images = data.float_images()
        self.image_ids = torch.tensor(ids)
        self.caption_ids = {tuple(tokenize(c)): i for cs, i in zip(data.captions, ids) for c in cs}
        self.vocab = vocab

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        flat, gallery = images.flatten(1), self.images.flatten(1)
        index = torch.cdist(flat, gallery).argmin(dim=1)
        return F.one_hot(self.image_ids[index], self.width).float()

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        found = [self.caption_ids[tuple(self.vocab.decode_tokens(row))] for row in ids]
        return F.one_hot(torch.tensor(found), self.width).float()


def test_retrieval_report_with_an_oracle(data: C.MNISTCaptions, vocab: Vocabulary) -> None:
    report = R.retrieval_report(DescriptionOracle(data, vocab), data, vocab, ks=(1, 4, 5))
    # By description the oracle is perfect.
    for direction in R.DIRECTIONS:
        assert report[direction]["description"] == {1: 1.0, 4: 1.0, 5: 1.0}
    # By instance it cannot separate canvases with one description: all g of a group tie, and
    # ties count against it. Text -> image: rank g. Image -> text: its 4 own captions tie with
    # the 4 (g - 1) identical captions of the others: rank 4 (g - 1) + 1.
    group = [sum(a == b for b in data.captions) for a in data.captions]
    for k in (1, 4, 5):
        text_hits = np.mean([g <= k for g in group])  # every caption of a canvas: same rank
        image_hits = np.mean([4 * (g - 1) + 1 <= k for g in group])
        assert report["text_to_image"]["instance"][k] == pytest.approx(text_hits)
        assert report["image_to_text"]["instance"][k] == pytest.approx(image_hits)
    assert report["text_to_image"]["instance"][1] < 1  # the fixture holds duplicates
    table = R.format_report(report)
    assert table.splitlines()[0].split() == ["direction", "relevance", "R@1", "R@4", "R@5"]
    assert len(table.splitlines()) == 5


class DigitModel(nn.Module):
    """Embeddings built so that zero-shot recognition has a known answer.

    - encode_image counts the separate blots of ink on a canvas: the test digits are ``k + 1``
      dots for digit ``k`` (the pen draws each dot as a disc), so it returns the one-hot ``e_k``;
    - encode_text returns ``e_d`` for a prompt naming digit ``d``, plus ``mislead * e_(d+1)``
      when the prompt says "small".
    """

    def __init__(self, vocab: Vocabulary, mislead: float = 0.0) -> None:
        super().__init__()
        self.vocab, self.mislead = vocab, mislead
        self.weight = nn.Parameter(torch.zeros(1))  # a parameter, so the model has a device

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        ink = (images * C.CANVAS_STD + C.CANVAS_MEAN)[:, 0] > 0.1
        dots = [ndimage.label(canvas.numpy(), structure=np.ones((3, 3)))[1] for canvas in ink]
        return F.one_hot(torch.tensor(dots) - 1, 10).float()

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(ids), 10)
        for row, text in enumerate(self.vocab.decode_batch(ids)):
            words = text.split()
            if ":" in words:  # "one digit : ..." counts the digits before the colon
                words = words[words.index(":") + 1 :]
            digit = next(C.NUMBER_WORDS.index(w) for w in words if w in C.NUMBER_WORDS)
            out[row, digit] = 1.0
            if "small" in words:
                out[row, (digit + 1) % 10] += self.mislead
        return out


def square_digits(labels: list[int]) -> torch.Tensor:
    """uint8 (N, 28, 28): k + 1 dots (2x2 squares, 5 pixels apart, four to a row) for label k."""
    digits = torch.zeros(len(labels), 28, 28, dtype=torch.uint8)
    for i, k in enumerate(labels):
        for dot in range(k + 1):
            row, column = 7 + 5 * (dot // 4), 6 + 5 * (dot % 4)
            digits[i, row : row + 2, column : column + 2] = 255
    return digits


def test_zero_shot_on_a_model_with_known_embeddings(vocab: Vocabulary) -> None:
    labels = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 0]
    digits = square_digits(labels)
    model = DigitModel(vocab)
    assert R.zero_shot_classify(model, vocab, digits).tolist() == labels
    assert R.zero_shot_accuracy(model, vocab, digits, torch.tensor(labels)) == 1.0
    wrong = torch.tensor(labels[1:] + labels[:1])
    expected = np.mean([a == b for a, b in zip(labels, wrong.tolist())])
    assert R.zero_shot_accuracy(model, vocab, digits, wrong) == pytest.approx(expected)


def test_prompt_ensembling_outvotes_a_misleading_prompt(vocab: Vocabulary) -> None:
    # "small" prompts of digit d point more to d + 1 (1.5 e_(d+1) + e_d): alone they shift
    # every answer down by one; averaged with the "large" prompts (e_d) the digit wins again:
    # normalize(e_d + 1.5 e_(d+1)) + e_d = 1.55 e_d + 0.83 e_(d+1).
    labels = list(range(10))
    digits = square_digits(labels)
    model = DigitModel(vocab, mislead=1.5)
    small = ["a small {digit} in the middle"]
    shifted = R.zero_shot_classify(model, vocab, digits, prompts=small).tolist()
    assert shifted == [(k - 1) % 10 for k in labels]
    both = small + ["a large {digit} in the middle"]
    assert R.zero_shot_classify(model, vocab, digits, prompts=both).tolist() == labels
    every = R.prompt_templates()  # both sizes, every stroke, slant and paraphrase: 72
    assert R.zero_shot_classify(model, vocab, digits, prompts=every).tolist() == labels
    assert R.zero_shot_classify(model, vocab, digits).tolist() == labels  # large ones only


class PositionModel(DigitModel):
    """Like DigitModel, but a canvas whose ink lies left of x = 32 reads as digit k, one to the
    right of it as digit k + 1: the views a digit is drawn in decide the answer."""

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        level = super().encode_image(images).argmax(dim=1)
        ink = (images * C.CANVAS_STD + C.CANVAS_MEAN)[:, 0]
        x = (ink.sum(dim=1) * torch.arange(64.0)).sum(dim=1) / ink.sum(dim=(1, 2))
        return F.one_hot((level + (x > 32).long()) % 10, 10).float()


def test_zero_shot_scores_average_the_views(vocab: Vocabulary) -> None:
    labels = [0, 4, 8]
    digits, model = square_digits(labels), PositionModel(vocab)
    one = ["a large {digit} in the middle"]  # class embeddings: exactly e_0 .. e_9
    left, right = (
        [(31.0, 32.0), (31.0, 29.0), (33.0, 35.0)],
        [(31.0, 32.0), (33.0, 32.0), (33.0, 35.0)],
    )
    scores = R.zero_shot_scores(model, vocab, digits, prompts=one, views=left)
    expected = torch.zeros(3, 10)
    for i, k in enumerate(labels):  # two views of three say k, one says k + 1
        expected[i, k], expected[i, k + 1] = 2 / 3, 1 / 3
    assert torch.allclose(scores, expected)
    assert R.zero_shot_classify(model, vocab, digits, prompts=one, views=left).tolist() == labels
    shifted = R.zero_shot_classify(model, vocab, digits, prompts=one, views=right).tolist()
    assert shifted == [k + 1 for k in labels]
    assert len(R.DEFAULT_VIEWS) == 9 and R.TYPICAL_CENTRE in R.DEFAULT_VIEWS
    # class embeddings computed once give the same scores; a wrong shape is refused
    weights = R.zero_shot_weights(model, vocab, one)
    again = R.zero_shot_scores(model, vocab, digits, views=left, class_weights=weights)
    assert torch.equal(again, scores)
    with pytest.raises(ValueError, match=r"class_weights must be the \(10, E\) tensor"):
        R.zero_shot_scores(model, vocab, digits, views=left, class_weights=weights[:3])


def test_zero_shot_weights_are_unit_class_embeddings(vocab: Vocabulary) -> None:
    weights = R.zero_shot_weights(DigitModel(vocab), vocab, ["a large {digit} in the middle"])
    assert torch.allclose(weights, torch.eye(10))


def test_prompts() -> None:
    every = R.prompt_templates()
    assert len(every) == 2 * 3 * 3 * 4 and len(set(every)) == len(every)
    assert "there is a small thick {digit} tilted left in the middle" in every
    assert all(p.count("{digit}") == 1 for p in every)
    # every template, filled in, is a caption the dataset itself could write
    for template in every:
        (found,) = C.parse_caption(template.replace("{digit}", "seven"))
        assert (found.slot, found.digit) == ("middle", 7)
    # the default: the large ones, the size place_digits_on_canvas draws
    assert len(R.DEFAULT_PROMPTS) == 3 * 3 * 4
    assert "a large {digit} in the middle" in R.DEFAULT_PROMPTS
    for template in R.DEFAULT_PROMPTS:
        (found,) = C.parse_caption(template.replace("{digit}", "seven"))
        assert found.size == "large"
    assert R.digit_prompts(0, ["one digit : a large {digit} in the middle"]) == [
        "one digit : a large zero in the middle"
    ]


# ----------------------------------------------------------------------------------------------
# putting MNIST digits on a canvas


@pytest.fixture(scope="module")
def ten_digits() -> torch.Tensor:
    images, labels = mnist.load_subset("test")
    return torch.stack([images[(labels == d).nonzero()[0, 0]] for d in range(10)])


@pytest.mark.parametrize(
    ("size", "thickness", "slant"),
    [("large", "normal", "upright"), ("small", "thick", "left"), ("large", "thin", "right")],
)
def test_place_digits_matches_the_dataset_renderer(
    ten_digits: torch.Tensor, size: str, thickness: str, slant: str
) -> None:
    # The dataset's render_layout draws digit i on canvas i from a pool of the ten digits
    # labelled 0..9; compose draws the same again at the typical centre with the middle of
    # the word's pen band, which is what place_digits_on_canvas promises.
    values = (C.SIZES.index(size), C.THICKNESSES.index(thickness), C.SLANTS.index(slant))
    one = layout([[None, (d, *values), None] for d in range(10)])
    _, centers, source, pen_width = C.render_layout(
        one, ten_digits, torch.arange(10), torch.Generator().manual_seed(0)
    )
    assert source[:, 1].tolist() == list(range(10))
    low, high = PEN_BANDS[thickness]
    assert ((pen_width[:, 1] >= low) & (pen_width[:, 1] <= high)).all()
    centers[:, 1] = torch.tensor(R.TYPICAL_CENTRE)
    pen_width[:, 1] = (low + high) / 2
    slots = torch.zeros(10, 3, 28, 28, dtype=torch.uint8)
    slots[:, 1] = ten_digits
    expected = C.compose(one, slots, centers, pen_width)
    placed = R.place_digits_on_canvas(ten_digits, size, thickness, slant)
    assert placed.dtype == torch.uint8 and placed.shape == (10, 64, 64)
    assert torch.equal(placed, expected)


def test_place_digits_puts_the_mass_in_the_middle_slot(ten_digits: torch.Tensor) -> None:
    placed = R.place_digits_on_canvas(ten_digits).numpy().astype(np.float64)
    ys, xs = np.mgrid[:64, :64]
    middle = (xs >= 22) & (xs < 42)  # halfway to the left (x = 12) and right (x = 52) slots
    for image in placed:
        mass = image.sum()
        assert mass > 0
        assert (image * xs).sum() / mass == pytest.approx(32, abs=0.5)
        assert (image * ys).sum() / mass == pytest.approx(32, abs=0.5)
        assert image[middle].sum() / mass > 0.99
    small = R.place_digits_on_canvas(ten_digits, size="small").numpy()
    height = lambda im: np.ptp(np.nonzero(im.any(axis=1))[0])  # noqa: E731
    for big, little in zip(placed, small):
        assert height(little) < height(big)


def test_place_digits_at_another_centre(ten_digits: torch.Tensor) -> None:
    placed = R.place_digits_on_canvas(ten_digits, centre=(29.5, 35.0)).numpy().astype(float)
    ys, xs = np.mgrid[:64, :64]
    for image in placed:
        mass = image.sum()
        assert (image * xs).sum() / mass == pytest.approx(29.5, abs=0.5)
        assert (image * ys).sum() / mass == pytest.approx(35.0, abs=0.5)


def test_place_digits_errors_and_empty_input() -> None:
    assert R.place_digits_on_canvas(torch.zeros(0, 28, 28, dtype=torch.uint8)).shape == (0, 64, 64)
    with pytest.raises(TypeError, match="digits must be a torch.Tensor"):
        R.place_digits_on_canvas(np.zeros((2, 28, 28), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"uint8 MNIST digits of shape \(N, 28, 28\), got shape"):
        R.place_digits_on_canvas(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match=r"got shape \(2, 1, 28, 28\)"):
        R.place_digits_on_canvas(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"size must be one of \('small', 'large'\), got 'big'"):
        R.place_digits_on_canvas(torch.zeros(2, 28, 28, dtype=torch.uint8), size="big")
    blank = torch.zeros(1, 28, 28, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"centre must lie on the canvas, 0..63 pixels"):
        R.place_digits_on_canvas(blank, centre=(70.0, 3.0))
    with pytest.raises(TypeError, match=r"centre must be a pair of numbers \(x, y\)"):
        R.place_digits_on_canvas(blank, centre="xy")


# ----------------------------------------------------------------------------------------------
# hard negative captions


def test_swap_one_digit_changes_exactly_one_digit() -> None:
    rows = [
        [(3, 0, 0, 0), None, (5, 1, 2, 2)],
        [None, (7, 1, 1, 1), None],
        [(0, 1, 0, 1), (1, 0, 1, 2), (2, 1, 2, 0)],
    ] * 40
    original = layout(rows)
    swapped = R.swap_one_digit(original, torch.Generator().manual_seed(0))
    for name in ("size", "thickness", "slant"):
        assert torch.equal(getattr(swapped, name), getattr(original, name))
    changed = swapped.digits != original.digits
    assert changed.sum(dim=1).tolist() == [1] * len(rows)
    assert (original.digits[changed] >= 0).all()  # only a digit that was there
    assert ((swapped.digits[changed] >= 0) & (swapped.digits[changed] <= 9)).all()
    # over 40 copies, every occupied slot of the three-digit canvas gets its turn
    assert changed[2::3].any(dim=0).tolist() == [True, True, True]
    assert changed[0::3, 1].sum() == 0  # the empty middle slot of canvas 0 is never touched


def test_swap_one_digit_respects_the_holdout() -> None:
    # a thick digit may not become a seven; a digit next to a three may not become an eight
    rows = [[(2, 1, 2, 1), None, None], [(3, 1, 1, 1), (4, 1, 1, 1), None]] * 200
    original = layout(rows)
    free = C.Holdout(digit_attributes=(), digit_pairs=())
    loose = R.swap_one_digit(original, torch.Generator().manual_seed(1), holdout=free)
    assert C.HOLDOUT.violations(loose).any()  # without the rule such swaps do happen
    strict = R.swap_one_digit(original, torch.Generator().manual_seed(1))
    assert not C.HOLDOUT.violations(strict).any()
    with pytest.raises(ValueError, match="every canvas needs at least one digit"):
        R.swap_one_digit(layout([[None, None, None]]), torch.Generator())


def items_of(layout: C.Layout, i: int) -> list[tuple[int, int, int, int, int]]:
    """What :meth:`MNISTCaptions.items` says, for canvas ``i`` of a bare layout."""
    row = [getattr(layout, f)[i].tolist() for f in C.Layout.fields()]
    return [(s, row[0][s], row[1][s], row[2][s], row[3][s]) for s in range(3) if row[0][s] >= 0]


def test_swap_digit_words_writes_the_captions_of_the_swapped_layout(
    data: C.MNISTCaptions, vocab: Vocabulary
) -> None:
    generator = torch.Generator().manual_seed(0)
    for paraphrase in range(4):  # paraphrase 2 starts with a count: "two digits : ..."
        ids, _ = vocab.encode_batch([captions[paraphrase] for captions in data.captions])
        negative, swapped = R.swap_digit_words(ids, data.layout, vocab, generator)
        assert negative.shape == ids.shape
        assert ((negative != ids).sum(dim=1) == 1).all()  # one token changed per caption
        for i in range(len(data)):
            # the reference: the dataset's own caption writer, run on the swapped layout
            expected = C.describe(items_of(swapped, i), paraphrase)
            assert vocab.decode_tokens(negative[i]) == vocab.decode_tokens(vocab.encode(expected))
            said, meant = C.parse_caption(expected), C.parse_caption(data.captions[i][0])
            differ = [(a, b) for a, b in zip(said, meant) if a != b]
            assert len(said) == len(meant) and len(differ) == 1
            assert differ[0][0].digit != differ[0][1].digit


def test_swap_digit_words_errors(data: C.MNISTCaptions, vocab: Vocabulary) -> None:
    ids, _ = vocab.encode_batch([captions[0] for captions in data.captions[:3]])
    generator = torch.Generator()
    several = (data.n_digits > 1).nonzero().flatten()[:3]  # the captions name one digit each
    assert data.n_digits[:3].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="ids must be captions of the canvases of layout"):
        R.swap_digit_words(ids, data.layout.select(several), vocab, generator)
    with pytest.raises(
        ValueError, match=r"layout.digits must be an integer tensor of shape \(3, 3\)"
    ):
        R.swap_digit_words(ids, data.layout, vocab, generator)
    with pytest.raises(ValueError, match=r"ids must be an integer tensor of shape \(B, T\)"):
        R.swap_digit_words(ids[0], data.layout.select(torch.arange(3)), vocab, generator)


# ----------------------------------------------------------------------------------------------
# embeddings, training, errors


def test_mean_over_words_against_one_text_at_a_time() -> None:
    from mmcourse.models.text import RNNTextEncoder

    encoder = RNNTextEncoder(12, 6, 5, cell="gru", bidirectional=True)
    tower = R.MeanOverWords(encoder)
    assert tower.out_dim == 10
    ids = torch.tensor([[1, 5, 7, 9, 2], [1, 4, 2, 0, 0]])  # the second is padded
    got, unpacked = tower(ids), tower.forward_padded(ids)  # packed, and the export path
    for i, length in enumerate((5, 3)):
        # the reference: the bare GRU on the unpadded text, its states averaged over the words
        states, _ = encoder.rnn(encoder.embedding(ids[i : i + 1, :length]))
        assert torch.allclose(got[i], states[0].mean(dim=0), atol=1e-6)
        assert torch.allclose(unpacked[i], states[0].mean(dim=0), atol=1e-6)
    with pytest.raises(TypeError, match="encoder must offer forward_sequence"):
        R.MeanOverWords(nn.Linear(2, 2))

    class PackedOnly(nn.Module):
        pad_id, out_dim = 0, 3

        def forward_sequence(self, ids: torch.Tensor) -> torch.Tensor:
            return torch.zeros(*ids.shape, 3)

    with pytest.raises(ValueError, match="PackedOnly has no forward_sequence_padded"):
        R.MeanOverWords(PackedOnly()).forward_padded(ids)


def test_downsampled_pools_before_the_encoder() -> None:
    seen = []

    class Spy(nn.Module):
        out_dim = 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x)
            return x.flatten(1).sum(dim=1, keepdim=True)

    images = torch.arange(2 * 64 * 64, dtype=torch.float32).view(2, 1, 64, 64)
    out = R.Downsampled(Spy(), 2)(images)
    assert seen[0].shape == (2, 1, 32, 32)
    assert seen[0][0, 0, 0, 0] == (0 + 1 + 64 + 65) / 4  # the mean of the top-left 2x2 block
    assert out.shape == (2, 1)
    with pytest.raises(TypeError, match="encoder must have an int attribute out_dim"):
        R.Downsampled(nn.Identity(), 2)


def test_train_dual_encoder_smoke(data: C.MNISTCaptions, vocab: Vocabulary) -> None:
    tiny = dict(embed_dim=8, image_channels=(4, 4, 4), image_dim=4, text_dim=8)
    small = data.select(torch.arange(64))
    model, history = R.train_dual_encoder(
        small,
        vocab,
        epochs=1,
        model=R.new_dual_encoder(len(vocab), **tiny),
        recipe=R.ContrastiveRecipe(mode="mask", batch_size=32),
    )
    assert isinstance(model, DualEncoder) and not model.training
    record = history.last
    assert {"train_loss", "lr", "temperature", "seconds"} <= set(record)
    assert record["train_loss"] > 0 and record["temperature"] > 0
    image_emb = R.embed_gallery(model, small.images[:5])  # uint8 canvases are standardised
    assert torch.allclose(image_emb, R.embed_gallery(model, small.float_images()[:5]))
    assert torch.allclose(image_emb.norm(dim=1), torch.ones(5))
    text_emb = R.embed_texts(model, vocab, small.captions[0] * 3, batch_size=5)
    assert text_emb.shape == (12, 8) and torch.allclose(text_emb.norm(dim=1), torch.ones(12))
    assert torch.equal(text_emb[:4], text_emb[4:8])  # the same text, the same embedding
    alone = torch.cat([R.embed_texts(model, vocab, [text]) for text in small.captions[0]])
    torch.testing.assert_close(text_emb[:4], alone, atol=1e-6, rtol=1e-6)  # no padding at all
    report = R.retrieval_report(model, small, vocab, ks=(1, 5))
    for direction in R.DIRECTIONS:
        for k in (1, 5):
            strict, loose = (report[direction][r][k] for r in R.RELEVANCE)
            assert 0 <= strict <= loose <= 1
    model.train()
    R.embed_gallery(model, small.images[:2])
    assert model.training  # put back in the mode it was in


@pytest.mark.parametrize("mode", R.MODES)
def test_training_loss_of_each_mode(mode: str) -> None:
    image, text, wrong = torch.randn(6, 4), torch.randn(6, 4), torch.randn(6, 3, 4)
    groups, scale = torch.tensor([0, 1, 0, 2, 3, 1]), torch.tensor(5.0)
    if mode == "none":
        contrastive = L.clip_loss(image, text, scale)
    else:
        contrastive = L.clip_loss_with_duplicates(image, text, scale, groups, mode=mode)
    loss_fn = R.training.make_loss_fn(mode, negative_weight=0.5)
    hard = L.negative_caption_loss(image, text, wrong, scale)
    assert loss_fn((image, text, scale, wrong), groups).item() == pytest.approx(
        (contrastive + 0.5 * hard).item()
    )
    assert loss_fn((image, text, scale), groups).item() == pytest.approx(contrastive.item())


def test_errors(data: C.MNISTCaptions, vocab: Vocabulary) -> None:
    model = DigitModel(vocab)
    with pytest.raises(TypeError, match="model must offer encode_image"):
        R.embed_gallery(nn.Linear(2, 2), data.images[:2])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        R.embed_gallery("model", data.images[:2])
    with pytest.raises(ValueError, match=r"images must be a float tensor of shape \(N, 1, H, W\)"):
        R.embed_gallery(model, torch.zeros(2, 64, 64))
    with pytest.raises(ValueError, match="uint8 images must be canvases of shape"):
        R.embed_gallery(model, data.images[:2, None])
    with pytest.raises(TypeError, match="texts must be a list of str, got str"):
        R.embed_texts(model, vocab, "a large seven in the middle")
    with pytest.raises(ValueError, match="texts is empty"):
        R.embed_texts(model, vocab, [])
    with pytest.raises(TypeError, match=r"texts\[1\] is 3"):
        R.embed_texts(model, vocab, ["a seven", 3])
    with pytest.raises(TypeError, match="vocab must be a Vocabulary"):
        R.embed_texts(model, ["a", "seven"], ["a seven"])
    with pytest.raises(ValueError, match="every prompt must be a str holding {digit}"):
        R.zero_shot_classify(model, vocab, square_digits([1]), prompts=["a large seven"])
    with pytest.raises(TypeError, match="prompts must be a list of templates"):
        R.zero_shot_classify(model, vocab, square_digits([1]), prompts="a {digit}")
    with pytest.raises(ValueError, match="prompts is empty"):
        R.zero_shot_classify(model, vocab, square_digits([1]), prompts=[])
    with pytest.raises(ValueError, match="views is empty"):
        R.zero_shot_classify(model, vocab, square_digits([1]), views=[])
    with pytest.raises(TypeError, match="every view must be a pair of numbers"):
        R.zero_shot_classify(model, vocab, square_digits([1]), views=[(32.0, 32.0, 1.0)])
    with pytest.raises(ValueError, match="digit_images is empty"):
        R.zero_shot_classify(model, vocab, square_digits([]))
    with pytest.raises(ValueError, match="labels must hold one digit per image, got 2 labels"):
        R.zero_shot_accuracy(model, vocab, square_digits([1]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"digit must be an int in 0..9, got 10"):
        R.digit_prompts(10)
    with pytest.raises(ValueError, match=r"every one of sizes must be one of"):
        R.prompt_templates(sizes=["huge"])
    with pytest.raises(TypeError, match="data must be an MNISTCaptions split"):
        R.retrieval_report(model, data.images, vocab)
    with pytest.raises(ValueError, match=r"mode must be one of \('none', 'mask', 'soft'\)"):
        R.ContrastiveRecipe(mode="hard")
    with pytest.raises(TypeError, match="train_data must be an MNISTCaptions split"):
        R.train_dual_encoder((data.images, data.captions), vocab)
    with pytest.raises(ValueError, match="downsample must divide 64"):
        R.new_dual_encoder(len(vocab), downsample=3)
    with pytest.raises(ValueError, match="batch_size must be an int >= 2"):
        R.ContrastiveRecipe(batch_size=1)
    with pytest.raises(ValueError, match="negatives must be an int >= 0, got -1"):
        R.ContrastiveRecipe(negatives=-1)
    with pytest.raises(TypeError, match=r"recipe must be a ContrastiveRecipe\(...\), got dict"):
        R.train_dual_encoder(data, vocab, recipe={"lr": 0.1})
    with pytest.raises(TypeError, match="model must be a DualEncoder .* got Linear"):
        R.train_dual_encoder(data, vocab, model=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="the model embeds 7 tokens but the vocabulary holds"):
        R.train_dual_encoder(data, vocab, model=R.new_dual_encoder(7))
    with pytest.raises(ValueError, match="text_encoder must be one of"):
        R.new_dual_encoder(len(vocab), text_encoder="rnn")
    with pytest.raises(ValueError, match="needs an even text_dim, got 33"):
        R.new_dual_encoder(len(vocab), text_dim=33)


def test_the_training_pieces_reject_bad_settings(vocab) -> None:
    with pytest.raises(ValueError, match=r"mode must be one of \('none', 'mask', 'soft'\)"):
        R.training.make_loss_fn("hard", 1.0)
    with pytest.raises(ValueError, match="negative_weight must be a finite number >= 0"):
        R.training.make_loss_fn("mask", -1.0)
    with pytest.raises(ValueError, match="negatives must be an int >= 0, got -1"):
        R.training.make_forward(vocab, -1, torch.Generator())
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        R.training.make_forward(vocab, 1, 0)
