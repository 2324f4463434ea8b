"""What every explorer shares: controls wired to a drawing, and a static picture as fallback.

An explorer subclasses :class:`Explorer` and implements two methods:

- ``controls()`` -- the ipywidgets controls, by name, with their starting values;
- ``draw(**values)`` -- a new matplotlib ``Figure`` for those values (the control names are
  the keyword arguments).

``widget()`` lays the controls out above the picture (an ``ipywidgets.Image``) and redraws it
whenever a control changes. Displaying the explorer itself (the last line of a cell) gives a bundle with three
representations, and each front end shows the richest it can: the widget (live in a running
kernel; in the book or an unrun stored notebook, drawn from the saved widget state, with
controls that change nothing), else a PNG of the starting state (a viewer without widgets),
else one sentence (``text/plain``: what nbval compares, so a stored notebook's text never
depends on a widget's random id).
"""

from __future__ import annotations

import base64
import io
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

FIGURE_DPI = 80
"""Resolution of every explorer picture: small PNGs redraw fast and keep notebooks light."""


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes (no pyplot involved, so nothing is shown twice)."""
    if not isinstance(figure, Figure):
        raise TypeError(f"draw() must return a matplotlib Figure, got {type(figure).__name__}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()


class Explorer(ABC):
    """Controls around a picture; see the module's docstring. Subclasses set ``title`` and
    ``sentence`` (what it shows, for the text fallback) and implement ``controls`` and
    ``draw``."""

    title: str = "Explorer"
    sentence: str = ""

    @abstractmethod
    def controls(self) -> dict[str, widgets.ValueWidget]:
        """New controls, by the names ``draw`` takes, at their starting values."""

    @abstractmethod
    def draw(self, **values: Any) -> Figure:
        """A new figure for these control values."""

    def start_values(self) -> dict[str, Any]:
        """The controls' starting values, by name."""
        return {name: control.value for name, control in self.controls().items()}

    def picture(self, **values: Any) -> bytes:
        """PNG bytes of ``draw(**values)``."""
        return figure_png(self.draw(**values))

    def response_seconds(self, values: Mapping[str, Any]) -> float:
        """Seconds from a change of the controls to its new picture (computing and drawing
        ``draw(**values)`` and making the PNG), as the widget does it."""
        start = time.perf_counter()
        self.picture(**dict(values))
        return time.perf_counter() - start

    def widget(self) -> widgets.VBox:
        """The live explorer: the controls in a row above the picture, redrawn on change."""
        return self._build()[0]

    def _build(self) -> tuple[widgets.VBox, bytes]:
        """The widget and the PNG of its starting state.

        The picture is an ``ipywidgets.Image`` whose value is replaced on every change: no
        output is displayed from a callback, so nothing but the cell's own result reaches a
        notebook runner (nbval, which knows no widgets, would otherwise see the pictures as
        extra outputs), and the stored widget state holds the starting picture."""
        controls = self.controls()
        for control in controls.values():
            control.style.description_width = "initial"  # the whole label, not "temperat..."
        start = self.picture(**{name: c.value for name, c in controls.items()})
        image = widgets.Image(value=start, format="png")

        def redraw(_: object = None) -> None:
            image.value = self.picture(**{name: c.value for name, c in controls.items()})

        for control in controls.values():
            control.observe(redraw, names="value")
        row = widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        return widgets.VBox([row, image]), start

    def fallback_text(self) -> str:
        return (
            f"{self.title}: {self.sentence} It responds once its cell has run in a live "
            "kernel; here it shows its starting state."
        )

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict:
        box, start = self._build()
        bundle = dict(box._repr_mimebundle_())
        bundle["image/png"] = base64.b64encode(start).decode()
        bundle["text/plain"] = self.fallback_text()
        return bundle

    def __repr__(self) -> str:
        return self.fallback_text()
