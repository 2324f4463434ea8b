"""Interactive explorers: ipywidgets controls around a picture, one explorer per idea.

- :class:`~mmcourse.explorers.shared_space_explorer.SharedSpaceExplorer` (chapter 01): drag the
  temperature of a contrastive loss and watch the shared space it trained change;
- :class:`~mmcourse.explorers.fusion_explorer.FusionExplorer` (chapter 06): pick a fusion, a canvas
  and a question; see the answer and, for cross-attention, where it looked;
- :class:`~mmcourse.explorers.caption_explorer.CaptionExplorer` (chapter 10): change a digit's size,
  thickness or slant, see the caption, the beam's alternatives and each word's attention;
- :class:`~mmcourse.explorers.retrieval_explorer.RetrievalExplorer` (chapter 11): type a query, see
  the best canvases; pick a digit, see its zero-shot scores;
- :class:`~mmcourse.explorers.corruption_explorer.CorruptionExplorer` (chapter 13): pick a
  corruption of the canvas or the question and drag its severity; see the damage, the answers
  and the test-set curves.

Each explorer keeps its logic in plain methods (``state(...)`` computes what is shown,
``draw(...)`` draws it), which the tests call without a browser; ``widget()`` only wires
controls to ``draw``. The controls respond once the explorer's cell has run in a live kernel
(JupyterLab; Colab is not tested). In the book, or a stored notebook that has not been run, the
saved widget shows the controls and the starting picture, and moving them changes nothing; a
viewer without widgets shows the starting picture, and plain text one sentence
(:class:`~mmcourse.explorers._base.Explorer`).
"""
