"""Stage-3 probe: does starting the canvas encoder from chapter 04's plain-MNIST DigitNet help?"""
import mmcourse, time, json, torch
from mmcourse import config
from mmcourse.casestudy import recipe
from mmcourse.caption_metrics import caption_report_for
from mmcourse.data import mnist
from mmcourse.digits import train_digit_classifier
from mmcourse.models.grid import StoredGrid, swap_encoder
from mmcourse.models.image import DigitNet
config.setup(seed=0, profile="fast")
data = recipe.build_data(seed=0)
out = {}
t = time.perf_counter()
images, labels = mnist.load_digits("train")
digitnet, _ = train_digit_classifier(images, labels, epochs=3, model=DigitNet(channels=(16, 32, 64)))
out["digitnet_s"] = round(time.perf_counter() - t, 1)
for arm in ("digitnet",):
    t = time.perf_counter()
    start = recipe.digitnet_encoder(digitnet.cpu()) if arm == "digitnet" else None
    encoder, _, _ = recipe.pretrain_encoder(data.splits["train"], 15, start=start)
    pre = time.perf_counter() - t
    regions = {s: recipe.store_regions(encoder, data.images(s)) for s in ("train", "val")}
    decoder = recipe.make_decoder("transformer", len(data.vocab), StoredGrid(64, recipe.REGION_DIM))
    hist = recipe.train_decoder(decoder, regions["train"], data.captions["train"], epochs=15,
                                val=(regions["val"], data.splits["val"]), vocab=data.vocab)
    swap_encoder(decoder, encoder.encoder)
    texts = recipe.write_captions(decoder, data.images("val"), data.vocab)
    rep = caption_report_for(texts, data.splits["val"])
    out[arm] = {"pretrain_s": round(pre, 1), "total_s": round(time.perf_counter() - t, 1),
                **{k: round(rep[k], 4) for k in ("exact", "digit", "size", "thickness", "slant")}}
    print(arm, out[arm], flush=True)
print(json.dumps(out))
