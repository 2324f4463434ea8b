"""How legible are the pen drawings themselves? DigitNet trained on pen drawings of MNIST's
training digits, tested on pen drawings of its test digits (each scaled back to 28x28)."""
import sys; sys.path.insert(0, "benchmarks")
import mmcourse, torch
from bench_rendered_digits import back_to_mnist, accuracy
from mmcourse.data import mnist, pen as P, captions as C
from mmcourse.digits import train_digit_classifier

def drawings(images, labels, seed):
    n = len(images); g = torch.Generator().manual_seed(seed)
    size = torch.randint(0, 2, (n,), generator=g)
    scale = torch.tensor(C.SCALES)[size]
    shear = torch.tensor(C.SHEARS)[torch.randint(0, 3, (n,), generator=g)]
    words = torch.randint(0, 3, (n,), generator=g)
    centre = torch.full((n, 2), P.WINDOW / 2)
    place = (scale, shear, centre + P.WINDOW // 2, P.pen_widths(words, g))
    w, _, picks = P.draw_legibly(images, P.pool_kinds(images, labels), torch.arange(n), place, g)
    x = back_to_mnist(w, centre, scale)
    return (x * 255).round().clamp(0, 255).to(torch.uint8), labels[picks], size, words

tr, trl = mnist.load_digits("train"); te, tel = mnist.load_digits("test")
xtr, ytr, _, _ = drawings(tr, trl, 1)
xte, yte, size, words = drawings(te, tel, 2)
model, _ = train_digit_classifier(xtr, ytr, epochs=3)
xf = xte.float() / 255
print("pen-trained DigitNet on pen drawings of test digits:", round(accuracy(model, xf, yte), 4))
for s in (0, 1):
    for k in (0, 1, 2):
        m = (size == s) & (words == k)
        print("  ", C.SIZES[s], C.THICKNESSES[k], round(accuracy(model, xf[m], yte[m]), 4))
plain, _ = train_digit_classifier(tr, trl, epochs=3)
print("plain DigitNet on plain MNIST test:", round(accuracy(plain, te.float() / 255, tel), 4))
