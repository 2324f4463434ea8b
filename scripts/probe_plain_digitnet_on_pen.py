"""DigitNet (plain MNIST) reading pen drawings of the bundled test digits, redrawn where faulty,
with this tree's drawing_faults: run with PYTHONPATH set to the tree to measure."""
import sys; sys.path.insert(0, "benchmarks")
import mmcourse, torch
from bench_rendered_digits import back_to_mnist, accuracy
from mmcourse.data import mnist, pen as P, captions as C
from mmcourse.digits import train_digit_classifier
tr, trl = mnist.load_digits("train"); te, tel = mnist.load_digits("test")
model, _ = train_digit_classifier(tr, trl, epochs=3)
n = len(te); kinds = P.pool_kinds(te, tel); g = torch.Generator().manual_seed(0)
total = []
for s in C.SCALES:
    for word in (0, 1, 2):
        for slant in (0, 1, 2):
            scale = torch.full((n,), s); shear = torch.full((n,), C.SHEARS[slant]); words = torch.full((n,), word)
            centre = torch.full((n, 2), P.WINDOW / 2)
            place = (scale, shear, centre + P.WINDOW // 2, P.pen_widths(words, g))
            w, _, picks = P.draw_legibly(te, kinds, torch.arange(n), place, g)
            total.append(accuracy(model, back_to_mnist(w, centre, scale), tel[picks]))
print("DigitNet on pen drawings, mean over 18 size/word/slant settings:", round(sum(total) / len(total), 4), "min", round(min(total), 4))
