"""The committed case-study weights: present, small, checked, and refused with a clear message
when they do not fit."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from mmcourse.caption_metrics import score_caption
from mmcourse.casestudy import pretrained, recipe
from mmcourse.casestudy.weights import WeightsError, read_sums
from mmcourse.data.captions import make_mnist_captions
from mmcourse.models.dual import new_dual_encoder
from mmcourse.vocab import SPECIALS, Vocabulary

FILES = (
    "encoder.pt",
    *(f"{kind}.pt" for kind in recipe.DECODERS),
    "dual_encoder.pt",
    *(pretrained.dual_encoder_file(seed, k) for seed, k in pretrained.ABLATION),
)


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary(pretrained.saved_vocabulary())


def test_every_committed_file_has_its_sha256_and_all_fit_in_10_mb() -> None:
    sums = read_sums(pretrained.WEIGHTS)
    assert sorted(sums) == sorted(FILES)
    total = 0
    for name in FILES:
        content = (pretrained.WEIGHTS / name).read_bytes()
        assert hashlib.sha256(content).hexdigest() == sums[name], name
        total += len(content)
    assert total <= 10 * 2**20, f"{total / 2**20:.1f} MB of weights; the budget is 10 MB"
    log = json.loads((pretrained.WEIGHTS / "training_log.json").read_text())
    assert set(recipe.DECODERS) <= set(log) and log["settings"]["profile"] == "fast"


def test_the_saved_vocabulary_is_the_fast_profiles() -> None:
    train = make_mnist_captions("train", profile="fast")
    built = Vocabulary.build([c for captions in train.captions for c in captions])
    assert built.itos == pretrained.saved_vocabulary()


def test_loaded_models_are_frozen_and_caption_canvases(vocab: Vocabulary) -> None:
    val = make_mnist_captions("val", n=4, profile="fast")
    canvases = val.float_images()
    for kind in recipe.DECODERS:
        decoder = pretrained.load_decoder(kind, vocab)
        assert not decoder.training
        assert not any(p.requires_grad for p in decoder.parameters())
        texts = recipe.write_captions(decoder, canvases, vocab)
        assert len(texts) == 4
        assert all(score_caption(t, val.descriptions(i)).parsed for i, t in enumerate(texts))
    encoder = pretrained.load_encoder()
    assert encoder.forward_grid(canvases).shape == (4, 64, recipe.REGION_DIM)
    dual = pretrained.load_dual_encoder(vocab)
    assert dual.encode_image(canvases).shape[0] == 4


def test_another_vocabulary_is_refused(vocab: Vocabulary) -> None:
    other = Vocabulary([*vocab.itos, "zebra"])
    with pytest.raises(WeightsError, match="another vocabulary.*pretrained.vocabulary"):
        pretrained.load_decoder("attention", other)
    with pytest.raises(WeightsError, match="another vocabulary"):
        pretrained.load_dual_encoder(other)
    with pytest.raises(TypeError, match="vocab must be a Vocabulary"):
        pretrained.load_dual_encoder(vocab.itos)
    with pytest.raises(ValueError, match="decoder"):
        pretrained.load_decoder("lstm", vocab)


def test_a_missing_or_damaged_folder_says_how_to_retrain(tmp_path, vocab: Vocabulary) -> None:
    with pytest.raises(WeightsError, match="no vocabulary.*train_casestudy_weights"):
        pretrained.load_decoder("attention", vocab, folder=tmp_path)
    with pytest.raises(WeightsError, match="no weights file.*train_casestudy_weights"):
        pretrained.load_encoder(folder=tmp_path)
    copy = tmp_path / "weights"
    shutil.copytree(pretrained.WEIGHTS, copy)
    data = bytearray((copy / "attention.pt").read_bytes())
    data[-100] ^= 0xFF
    (copy / "attention.pt").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupted or was changed"):
        pretrained.load_decoder("attention", vocab, folder=copy)


def test_new_dual_encoder_is_the_trained_architecture(vocab: Vocabulary) -> None:
    fresh = new_dual_encoder(len(vocab))
    trained = pretrained.load_dual_encoder(vocab)
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {
        k: v.shape for k, v in trained.state_dict().items()
    }
    same, other = (new_dual_encoder(len(vocab), seed=s).state_dict() for s in (0, 1))
    assert all(torch.equal(same[k], fresh.state_dict()[k]) for k in same)  # seeded
    assert not all(torch.equal(same[k], other[k]) for k in same)
    with pytest.raises(ValueError, match="even text_dim"):
        new_dual_encoder(len(vocab), text_dim=33)
    with pytest.raises(ValueError, match="downsample"):
        new_dual_encoder(len(vocab), downsample=3)


def test_data_built_with_the_saved_vocabulary_uses_its_ids() -> None:
    saved = pretrained.vocabulary()
    data = recipe.build_data({"train": 30, "val": 5, "test": 5, "compositional": 5}, vocab=saved)
    assert data.vocab is saved  # a small training split alone would order its words otherwise
    with pytest.raises(ValueError, match="vocab lacks words"):
        recipe.build_data({"train": 30, "val": 5, "test": 5, "compositional": 5},
                          vocab=Vocabulary([*SPECIALS, "a", "seven"]))  # fmt: skip
    with pytest.raises(TypeError, match="vocab must be a Vocabulary"):
        recipe.build_data({"train": 30, "val": 5, "test": 5, "compositional": 5}, vocab=saved.itos)


class _Uncached(torch.nn.Module):
    """The committed Transformer run without its key-value cache: the prefix again each step."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def init_state(self, images: torch.Tensor):
        return self.model.init_state(images)

    def step(self, tokens: torch.Tensor, state):
        return self.model.step(tokens, state, use_cache=False)


def test_the_key_value_cache_writes_the_committed_transformers_captions(vocab) -> None:
    """Greedy and beam search give the same tokens with the cache as without it."""
    canvases = make_mnist_captions("test", n=64, profile="fast").float_images()
    model = pretrained.load_decoder("transformer", vocab)
    for width in (1, 3):
        cached = recipe.write_captions(model, canvases, vocab, beam_width=width)
        assert cached == recipe.write_captions(_Uncached(model), canvases, vocab, beam_width=width)


def test_the_hard_negative_ablation_loads_each_of_its_models(vocab: Vocabulary) -> None:
    models = {
        (seed, k): pretrained.load_dual_encoder(vocab, seed=seed, negatives=k)
        for seed, k in ((0, 3), *pretrained.ABLATION)
    }
    weights = {key: model.state_dict() for key, model in models.items()}
    first = next(iter(weights.values()))
    for key, state in list(weights.items())[1:]:
        assert state.keys() == first.keys()
        assert any(not torch.equal(state[name], first[name]) for name in first), key
    with pytest.raises(ValueError, match=r"seed=2, negatives=3.*\(0, 3\)"):
        pretrained.load_dual_encoder(vocab, seed=2)
