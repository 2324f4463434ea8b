"""utils, doctor, course map and dataset statistics."""

from __future__ import annotations

from collections import Counter

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from mmcourse import chapters, doctor, utils
from mmcourse.data import captions as C
from mmcourse.data import mnist, stats


def shown_by_folded_output(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The HTML that folded_output displays, collected instead of displayed."""
    import IPython.display

    shown: list[str] = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj.data))
    return shown


def test_folded_output_keeps_prints_and_figures_in_one_closed_details(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmcourse.checks._core import CheckResult

    shown = shown_by_folded_output(monkeypatch)
    figures_before = plt.get_fignums()
    with utils.folded_output():
        print("alpha: <0.766>")
        plt.plot([0, 1])
        plt.show()
        plt.figure()  # drawn but not shown: kept too, not left for the notebook to show
        CheckResult(True, "fine").confirm()
    assert capsys.readouterr().out == ""  # nothing reached the screen outside the element
    (page,) = shown
    assert page.startswith("<details><summary>Output of the worked solution (click to open)")
    assert "<details open" not in page  # closed until clicked
    assert "<pre>alpha: &lt;0.766&gt;\nCorrect: fine\n</pre>" in page  # escaped
    assert page.count('<img src="data:image/png;base64,') == 2
    assert plt.get_fignums() == figures_before  # the solution's figures were closed
    assert plt.show is not None and "folded" not in repr(plt.show)


def test_a_failing_self_check_fails_the_solution(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmcourse.checks._core import CheckResult

    shown = shown_by_folded_output(monkeypatch)
    show = plt.show
    with pytest.raises(AssertionError, match="Not yet: too small"), utils.folded_output():
        CheckResult(False, "too small").confirm()
    assert shown == [] and plt.show is show


def test_expect_error_prints_the_first_line(capsys: pytest.CaptureFixture[str]) -> None:
    with utils.expect_error(ZeroDivisionError):
        1 / 0  # noqa: B018
    assert capsys.readouterr().out == "ZeroDivisionError: division by zero\n"


def test_expect_error_insists_on_an_error() -> None:
    with pytest.raises(AssertionError, match="expected to raise"), utils.expect_error():
        pass


def test_expect_error_lets_other_errors_through() -> None:
    with pytest.raises(KeyError), utils.expect_error(ValueError):
        raise KeyError("x")
    with pytest.raises(ValueError, match="exception classes"), utils.expect_error("oops"):  # type: ignore[arg-type]
        pass


def test_timer_prints_wall_time(capsys: pytest.CaptureFixture[str]) -> None:
    with utils.timer():
        pass
    out = capsys.readouterr().out
    assert out.startswith("wall time: ") and out.endswith(" s\n")


def test_doctor_finds_everything_here() -> None:
    findings = doctor.check_environment()
    assert all(f.ok for f in findings), doctor.report(findings)
    items = {f.item for f in findings}
    assert {"torch", "bundled MNIST subset", "python"} <= items
    assert doctor.report(findings).count("\n") == len(findings) - 1


def test_doctor_reports_a_missing_package() -> None:
    (finding,) = doctor.package_versions(("surely_not_a_package_xyz",))
    assert not finding.ok and "cannot import" in finding.detail


def test_doctor_reports_a_broken_subset(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(mnist, "SUBSET_DIR", tmp_path)
    finding = doctor.data_findings()[0]
    assert not finding.ok and "missing" in finding.detail


def test_course_map_lists_every_notebook_and_only_existing_ones() -> None:
    from pathlib import Path

    files = sorted(p.name for p in (Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
    # every entry points at a notebook that exists, and every notebook has an entry, in order
    assert [c.file for c in chapters.CHAPTERS] == files
    assert [c.number for c in chapters.CHAPTERS] == [int(f[:2]) for f in files]
    steps = {part for c in chapters.CHAPTERS for part in c.step.split(" + ")}
    assert steps <= {"overview", *chapters.RECIPE}
    fig = chapters.draw_map()
    assert len(fig.axes) == 1
    plt.close(fig)


@pytest.fixture(scope="module")
def data() -> C.MNISTCaptions:
    return C.generate(300, "train", *mnist.load_subset("train"), seed=2)


def test_attribute_table_against_a_loop(data: C.MNISTCaptions) -> None:
    table = stats.attribute_table(data, "slant")
    expected = torch.zeros(10, 3, dtype=torch.long)
    for index in range(len(data)):
        for _, digit, _, _, slant in data.items(index):
            expected[digit, slant] += 1
    assert torch.equal(table, expected)
    with pytest.raises(ValueError, match="attribute must be one of"):
        stats.attribute_table(data, "colour")


def test_pair_table_against_a_loop(data: C.MNISTCaptions) -> None:
    table = stats.pair_table(data)
    assert torch.equal(table, table.T)
    a, b = 2, 5
    expected = sum(1 for i in range(len(data)) if {a, b} <= {d for _, d, *_ in data.items(i)})
    assert table[a, b] == expected


def test_caption_lengths_and_word_counts(data: C.MNISTCaptions) -> None:
    lengths = stats.caption_lengths(data, template=0)
    assert lengths.tolist() == [len(refs[0].split()) for refs in data.captions]
    assert len(stats.caption_lengths(data)) == 4 * len(data)
    counts = stats.word_counts(data)
    assert counts == Counter(w for refs in data.captions for c in refs for w in c.split())
    with pytest.raises(ValueError, match="template must be None or in"):
        stats.caption_lengths(data, template=4)


def test_doctor_says_whether_numbers_match_the_stored_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mmcourse import portable

    monkeypatch.setattr(
        portable, "bit_identical_platform", lambda: (False, "the processor is arm64")
    )
    finding = doctor.numerics_finding()
    assert finding.ok and finding.detail == "close, not identical: the processor is arm64"
    monkeypatch.setattr(
        portable, "bit_identical_platform", lambda: (True, "Linux on x86-64 with AVX2")
    )
    for name, value in portable.SETTINGS.items():
        monkeypatch.setenv(name, value)
    assert doctor.numerics_finding().detail.startswith("yes: Linux on x86-64 with AVX2")
    monkeypatch.setenv("MKL_CBWR", "AUTO")
    assert "portable settings are off" in doctor.numerics_finding().detail


@pytest.mark.parametrize(
    ("value", "hidden"), [("1", True), ("True", True), ("0", False), ("", False)]
)
def test_progress_bars_honour_tqdm_disable(
    monkeypatch: pytest.MonkeyPatch, value: str, hidden: bool
) -> None:
    monkeypatch.setenv("TQDM_DISABLE", value)
    assert utils.progress_hidden() is hidden
    bar = utils.progress(range(3), desc="x")
    assert bar.disable is hidden
    assert list(bar) == [0, 1, 2]


def test_progress_keeps_an_explicit_disable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert utils.progress(range(2), disable=True).disable
