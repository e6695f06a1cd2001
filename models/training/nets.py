"""The networks `vigil train` fits: a small VGG-style CNN (the course's LittleVGG, with batch
normalisation and global average pooling so it stays under 2 MB), one head per output.

Heads: `class` (softmax over K labels), `gender` (softmax [female, male]), `age` (years, a linear
unit scaled by 100 so the weights stay near 1). TensorFlow/Keras are imported inside the functions:
the package imports fast without the `tensorflow` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

AGE_SCALE = 100.0  # the age unit's output x this = years


def stage_widths(width: int) -> list[tuple[int, int]]:
    """(filters, conv layers) of each stage; each stage but the last ends with a 2x2 max-pool."""
    return [(width, 1), (width * 2, 2), (width * 4, 2), (width * 6, 1)]


def build_net(
    input_shape: Sequence[int],
    heads: dict[str, int],
    *,
    width: int = 32,
    dropout: float = 0.3,
    name: str = "vigil_classifier",
) -> Any:
    """The Keras model: `input_shape` (h, w, c) floats -> one output per head, in `heads` order."""
    import keras
    from keras import layers

    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    plan = stage_widths(width)
    for s, (filters, convs) in enumerate(plan):
        for c in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{s + 1}_{c + 1}")(x)
            x = layers.BatchNormalization(name=f"bn{s + 1}_{c + 1}")(x)
            x = layers.ReLU(name=f"relu{s + 1}_{c + 1}")(x)
        if s < len(plan) - 1:
            x = layers.MaxPooling2D(2, name=f"pool{s + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = []
    for head, units in heads.items():
        if head == "age":
            y = layers.Dense(1, name="age_unit")(x)
            outputs.append(layers.Rescaling(AGE_SCALE, name="age")(y))
        else:
            outputs.append(layers.Dense(units, activation="softmax", name=head)(x))
    return keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=name)


def augment_batch(
    images: Any, rng: Any, shift: float = 0.08, turn: float = 10.0, zoom: float = 0.1, degrade: float = 0.0
) -> Any:
    """One random affine warp per image (mirror, shift up to `shift` of the side, turn up to `turn`
    degrees, zoom up to `zoom`), then brightness (+-0.2) and contrast (x0.8..1.2); images (N, h, w, c)
    float 0..1, `rng` a `tf.random.Generator` (seeded runs). One warp instead of a chain of Keras
    random layers (a warp each): half the cost of a training step on this network. With probability
    `degrade` the batch is also shrunk to 30-100 % of its side and enlarged back: the soft, low-detail
    faces of distant or low-resolution cameras, which sharp training chips never show."""
    import math

    import tensorflow as tf

    n = tf.shape(images)[0]
    h, w = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
    angle = rng.uniform([n], -turn, turn) * (math.pi / 180)
    scale = rng.uniform([n], 1 - zoom, 1 + zoom)
    mirror = tf.where(rng.uniform([n]) < 0.5, -1.0, 1.0)
    tx, ty = rng.uniform([n], -shift, shift) * w, rng.uniform([n], -shift, shift) * h
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    a0, a1, b0, b1 = cos * mirror, -sin, sin * mirror, cos  # output -> input point, about the centre
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a2 = cx - a0 * cx - a1 * cy + tx
    b2 = cy - b0 * cx - b1 * cy + ty
    zeros = tf.zeros([n])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    brightness = rng.uniform([n, 1, 1, 1], -0.2, 0.2)
    contrast = rng.uniform([n, 1, 1, 1], 0.8, 1.2)
    mean = tf.reduce_mean(warped, axis=[1, 2, 3], keepdims=True)
    out = tf.clip_by_value((warped - mean) * contrast + mean + brightness, 0.0, 1.0)
    if degrade > 0:
        side = tf.shape(images)[1:3]
        small = tf.maximum(tf.cast(tf.cast(side, tf.float32) * rng.uniform([], 0.3, 1.0), tf.int32), 8)
        plain = out  # the two resizes run only on the batches the draw softens
        out = tf.cond(
            rng.uniform([]) < degrade,
            lambda: tf.image.resize(tf.image.resize(plain, small, method="area"), side, method="bilinear"),
            lambda: plain,
        )
    return out


def count_params(model: Any) -> int:
    """Weights of `model` (trainable and not)."""
    return int(sum(int(w.numpy().size) for w in model.weights))
