"""A user-style factory returning a Keras model (two named outputs, a dict)."""
import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402


def two_heads():
    keras.utils.set_random_seed(0)
    x = keras.Input((12,), name="features")
    h = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(x, {"scores": keras.layers.Dense(5)(h), "value": keras.layers.Dense(1)(h)})
