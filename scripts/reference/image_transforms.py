"""Reference values for the image pipeline's tests: torchvision transforms on PIL images.

Writes into OUT_DIR a few generated images (RGB JPEGs in three chroma subsamplings, one
progressive, RGB PNG, grayscale JPEG, CMYK JPEG) and
manifest.json, one case per entry: the image, a transforms config in metricbench's form, the
random draws torchvision consumed (recorded by replaying its RNG calls under the same seed and
checked against its own result), the crop box it chose, and the output tensor (float32,
little-endian, [3, H, W]) after ToTensor + normalisation in the named convention.

Usage: python image_transforms.py OUT_DIR
"""

import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F

CONVENTIONS = {
    "imagenet": dict(bgr=False, scale=1, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    "bninception": dict(bgr=True, scale=255, mean=[104, 117, 128], std=[1, 1, 1]),
}


def pattern(width, height, seed):
    """Smooth gradients, sharp edges and noise, so resampling has something to get wrong."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 127 + 120 * np.sin(x / 17.0) * np.cos(y / 23.0)
    g = 255 * x / width
    b = np.where(((x // 31) + (y // 29)) % 2 == 0, 220, 30)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, size=(height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_images(out):
    Image.fromarray(pattern(500, 375, 1)).save(os.path.join(out, "rgb.jpg"), quality=90)
    Image.fromarray(pattern(333, 517, 2)).save(os.path.join(out, "rgb.png"))
    Image.fromarray(pattern(300, 400, 3)).convert("L").save(os.path.join(out, "gray.jpg"), quality=92)
    Image.fromarray(pattern(256, 200, 4)).convert("CMYK").save(os.path.join(out, "cmyk.jpg"), quality=92)
    Image.fromarray(pattern(90, 70, 5)).save(os.path.join(out, "small.png"))
    # Other chroma subsamplings (4:2:2 progressive, 4:4:4), odd sizes that end inside an MCU.
    Image.fromarray(pattern(411, 297, 6)).save(os.path.join(out, "rgb422p.jpg"), quality=85,
                                               subsampling=1, progressive=True)
    Image.fromarray(pattern(389, 503, 7)).save(os.path.join(out, "rgb444.jpg"), quality=80,
                                               subsampling=0)


def to_tensor(img, convention):
    c = CONVENTIONS[convention]
    if c["bgr"]:
        r, g, b = img.split()
        img = Image.merge("RGB", (b, g, r))
    t = F.to_tensor(img)
    if c["scale"] != 1:
        t = t * c["scale"]
    return F.normalize(t, c["mean"], c["std"])


def record_crop_draws(img, scale, ratio, seed):
    """The draws RandomResizedCrop.get_params makes under `seed`, and the box it returns."""
    torch.manual_seed(seed)
    expected = T.RandomResizedCrop.get_params(img, scale, ratio)
    torch.manual_seed(seed)
    width, height = img.size
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    draws = []
    for _ in range(10):
        u = torch.empty(1).uniform_(scale[0], scale[1]).item()
        lr = torch.empty(1).uniform_(log_ratio[0], log_ratio[1])
        draws += [u, lr.item()]
        target_area = area * u
        aspect = torch.exp(lr).item()
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = torch.randint(0, height - h + 1, size=(1,)).item()
            j = torch.randint(0, width - w + 1, size=(1,)).item()
            draws += [i, j]
            break
    return draws, list(expected)


def main(out):
    os.makedirs(out, exist_ok=True)
    make_images(out)
    cases = []

    def add(name, image, config, pil_transform, convention="imagenet", draws=(), box=None):
        img = Image.open(os.path.join(out, image)).convert("RGB")
        result = to_tensor(pil_transform(img), convention).numpy().astype("<f4")
        result.tofile(os.path.join(out, name + ".bin"))
        cases.append(dict(name=name, image=image, transforms=config, convention=convention,
                          draws=list(draws), box=box, shape=list(result.shape)))

    for image in ["rgb.jpg", "rgb.png", "gray.jpg", "cmyk.jpg", "small.png", "rgb422p.jpg",
                  "rgb444.jpg"]:
        raw = np.asarray(Image.open(os.path.join(out, image)).convert("RGB"))
        raw.tofile(os.path.join(out, image + ".rgb"))
        eval_config = {"Resize": {"size": 256}, "CenterCrop": {"size": 227}}
        eval_t = T.Compose([T.Resize(256), T.CenterCrop(227)])
        for convention in CONVENTIONS:
            add(f"{image}-eval-{convention}", image, eval_config, eval_t, convention)

    # An upscaling resize and a centre crop larger than the image (zero padding).
    add("small.png-up", "small.png", {"Resize": {"size": "150"}, "CenterCrop": {"size": [120, 100]}},
        T.Compose([T.Resize(150), T.CenterCrop([120, 100])]))
    add("rgb.png-pad", "rgb.png", {"CenterCrop": {"size": [600, 200]}}, T.CenterCrop([600, 200]))

    # The default train pipeline under fixed seeds: Resize, RandomResizedCrop, RandomHorizontalFlip.
    train_config = {"Resize": {"size": 256},
                    "RandomResizedCrop": {"scale": "0.16 1", "ratio": "0.75 1.33", "size": 227},
                    "RandomHorizontalFlip": {"p": 0.5}}
    for image in ["rgb.png", "rgb.jpg", "rgb422p.jpg", "gray.jpg", "cmyk.jpg"]:
        for seed in range(8):
            img = Image.open(os.path.join(out, image)).convert("RGB")
            resized = T.Resize(256)(img)
            draws, box = record_crop_draws(resized, (0.16, 1.0), (0.75, 1.33), seed)
            torch.manual_seed(seed)
            T.RandomResizedCrop.get_params(resized, (0.16, 1.0), (0.75, 1.33))
            flip = torch.rand(1).item()
            draws.append(flip)
            # torchvision's own composed transform under the same seed must agree with the replay.
            torch.manual_seed(seed)
            composed = T.Compose([T.RandomResizedCrop(227, (0.16, 1.0), (0.75, 1.33)),
                                  T.RandomHorizontalFlip(0.5)])(resized)

            def replay(img, box=box, flip=flip):
                out_img = F.resized_crop(T.Resize(256)(img), *box, [227, 227])
                return F.hflip(out_img) if flip < 0.5 else out_img

            assert np.array_equal(np.asarray(composed), np.asarray(replay(img)))
            add(f"{image}-train-{seed}", image, train_config, replay, draws=draws, box=box)

    # Crop boxes alone, including the fallback (scales no try can satisfy) on both sides of the
    # ratio range.
    boxes = []
    for (w, h) in [(500, 375), (375, 500), (341, 256), (1000, 90), (90, 1000), (227, 227)]:
        img = Image.new("RGB", (w, h))
        for scale, ratio in [((0.16, 1.0), (0.75, 1.33)), ((0.08, 1.0), (3 / 4, 4 / 3)),
                             ((2.0, 3.0), (0.75, 1.33)), ((0.5, 0.5), (2.0, 2.0))]:
            for seed in range(5):
                draws, box = record_crop_draws(img, scale, ratio, seed)
                boxes.append(dict(width=w, height=h, scale=scale, ratio=ratio, draws=draws, box=box))

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(dict(cases=cases, boxes=boxes), f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
