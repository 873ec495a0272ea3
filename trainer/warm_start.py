"""Warm start: a new model begins from the weights of the latest blessed one, where they still fit.

Every export carries a snapshot of its Keras layers (`WEIGHTS_FILE`, beside the warm-up records in
`assets.extra/`, which TF Serving ignores): each layer's weights by layer name, the vocabulary of every
feature that has one, and the layout of the first hidden layer's input (which rows of `hidden_0`'s
kernel belong to which feature). A plain `.npz` + JSON snapshot, not a `.keras` file, because the new
model is rarely the same architecture as the old one (vocabularies grow) and a snapshot needs no Keras
deserialisation (our text columns use a Lambda layer, which Keras 3 refuses to load in safe mode).

`transfer_weights` then copies, layer by layer:
- a layer whose weights have the base's shapes, unchanged;
- an embedding, row by row through the vocabularies: a value both vocabularies know keeps its old row
  (wherever frequency ordering moved it), OOV buckets keep theirs, new values keep fresh rows;
- `hidden_0`'s kernel, segment by segment, the same way for one-hot and bag-of-words inputs (a feature
  new to the config gets fresh rows, a dropped one's rows are dropped).
Any other shape change (hidden units, embedding width) means the architecture changed: the whole run
starts cold, with the reason, rather than mixing a half-transferred network. The outcome is recorded
in `training_summary.json` as `warm_start`: the base model's path, or why the run was cold.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from trainer.trainer_config import TrainerConfig, cross_name

#: The layer snapshot inside an exported SavedModel directory.
WEIGHTS_FILE = os.path.join("assets.extra", "keras_layer_weights.npz")
#: The layer whose kernel rows follow the features' layout.
FIRST_HIDDEN = "hidden_0"
_META_KEY = "__meta__"


class ColdStart(Exception):
    """The base model cannot seed this model; the message is the reason recorded in the summary."""


@dataclasses.dataclass(frozen=True)
class Segment:
    """One feature's block of rows in `hidden_0`'s kernel (and, for `ids`, of its embedding).

    kind `ids`: one row per id (one-hot or bag-of-words); `offset` ids precede the vocabulary (the text
    pad); `oov` buckets follow it. kind `dense`: a fixed-width vector (a number, an embedding).
    """

    name: str
    kind: str
    width: int
    offset: int = 0
    oov: int = 0


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What a model leaves for its successor: layer weights, vocabularies, and the row layouts of
    `hidden_0`'s kernel (`segments`) and of each embedding table (`embeddings`, by layer name)."""

    layers: Mapping[str, Sequence[np.ndarray]]
    vocabularies: Mapping[str, Sequence[str]]
    segments: Sequence[Segment]
    embeddings: Mapping[str, Segment]


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """The outcome `training_summary.json` records: the base model, or why the run is cold."""

    base_model: Optional[str]
    cold_reason: Optional[str] = None
    copied: tuple[str, ...] = ()
    remapped: tuple[str, ...] = ()
    fresh: tuple[str, ...] = ()

    @property
    def warm(self) -> bool:
        return self.cold_reason is None

    def summary(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"warm": self.warm}


def layout(config: TrainerConfig, depths: Mapping[str, int]) -> tuple[list[Segment], dict[str, Segment]]:
    """`hidden_0`'s input segments in `build_model`'s column order, and each embedding table's rows.

    `depths` is each id feature's `model.categorical_depth` (vocabulary + OOV, or buckets).
    """
    segments, embeddings = [], {}
    for spec in config.features:
        if not (spec.is_text or spec.is_id):
            segments.append(Segment(spec.name, "dense", 1))
            continue
        offset = 1 if spec.is_text else 0  # text ids are shifted by one: row 0 is the padding
        ids = Segment(spec.name, "ids", depths[spec.name] + offset, offset,
                      spec.oov_buckets if spec.has_vocabulary else 0)
        if spec.embedding_dim:
            segments.append(Segment(spec.name, "dense", spec.embedding_dim))
            embeddings[f"{spec.name}_embedding"] = ids
        else:
            segments.append(ids)
    for cross in config.crosses:
        segments.append(Segment(cross_name(cross), "ids", config.cross_hash_buckets))
    return segments, embeddings


def snapshot(model, config: TrainerConfig, vocabulary_sizes: Mapping[str, int],
             vocabularies: Mapping[str, Sequence[str]]) -> Snapshot:
    """The model's layer weights with the layout and vocabularies needed to reuse them.

    `vocabulary_sizes` and `vocabularies` are `build_model`'s inputs and each vocabulary's entries.
    """
    from trainer.model import categorical_depth

    depths = {spec.name: categorical_depth(spec, vocabulary_sizes) for spec in config.features
              if spec.is_id or spec.is_text}
    segments, embeddings = layout(config, depths)
    layers = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}
    return Snapshot(layers, {k: list(v) for k, v in vocabularies.items()}, segments, embeddings)


def save(snap: Snapshot, export_dir: str) -> str:
    """Writes `WEIGHTS_FILE` under `export_dir` (any tf.io.gfile path); returns its path."""
    import tensorflow as tf

    arrays = {f"{name}/{i}": value for name, values in snap.layers.items() for i, value in enumerate(values)}
    meta = {"vocabularies": snap.vocabularies, "segments": [dataclasses.asdict(s) for s in snap.segments],
            "embeddings": {name: dataclasses.asdict(s) for name, s in snap.embeddings.items()},
            "layers": {name: len(values) for name, values in snap.layers.items()}}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{_META_KEY: np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)})
    path = os.path.join(export_dir, WEIGHTS_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())
    return path


def load(export_dir: str) -> Snapshot:
    """The snapshot an earlier export left; ColdStart when there is none."""
    import tensorflow as tf

    path = os.path.join(export_dir, WEIGHTS_FILE)
    if not tf.io.gfile.exists(path):
        raise ColdStart(f"base model {export_dir} has no layer snapshot ({WEIGHTS_FILE}); it predates warm start")
    with tf.io.gfile.GFile(path, "rb") as f:
        archive = np.load(io.BytesIO(f.read()), allow_pickle=False)
    meta = json.loads(archive[_META_KEY].tobytes().decode())
    layers = {name: [archive[f"{name}/{i}"] for i in range(count)] for name, count in meta["layers"].items()}
    return Snapshot(layers, meta["vocabularies"], [Segment(**s) for s in meta["segments"]],
                    {name: Segment(**s) for name, s in meta["embeddings"].items()})


def _id_rows(new: Segment, old: Segment, new_vocab: Optional[Sequence[str]],
             old_vocab: Optional[Sequence[str]]) -> list[Optional[int]]:
    """For each row of the new `ids` segment, the old segment's row holding the same value (or None)."""
    described = (new_vocab is not None and old_vocab is not None
                 and new.width == new.offset + len(new_vocab) + new.oov and old.width == old.offset + len(old_vocab) + old.oov)
    if not described:  # hashed or bucketized: ids mean the same where both exist
        return [row if row < old.width else None for row in range(new.width)]
    old_index = {value: i for i, value in enumerate(old_vocab)}
    rows: list[Optional[int]] = [row if row < min(new.offset, old.offset) else None for row in range(new.offset)]
    rows += [None if value not in old_index else old.offset + old_index[value] for value in new_vocab]
    rows += [old.offset + len(old_vocab) + k if k < old.oov else None for k in range(new.oov)]
    return rows


def _segment_rows(new: Segment, old: Optional[Segment], current: Snapshot, base: Snapshot) -> list[Optional[int]]:
    """Rows of the new segment mapped to rows of the old one (relative to each segment's start)."""
    if old is None or old.kind != new.kind:
        return [None] * new.width
    if new.kind == "dense":
        if new.width != old.width:
            raise ColdStart(f"feature {new.name!r} is {new.width} wide, {old.width} in the base model")
        return list(range(new.width))
    return _id_rows(new, old, current.vocabularies.get(new.name), base.vocabularies.get(new.name))


def _gather(old: np.ndarray, fresh: np.ndarray, rows: Sequence[Optional[int]]) -> np.ndarray:
    """`fresh` with every mapped row replaced by the old row it maps to."""
    result = fresh.copy()
    for row, source in enumerate(rows):
        if source is not None:
            result[row] = old[source]
    return result


def _first_hidden_rows(current: Snapshot, base: Snapshot) -> list[Optional[int]]:
    old_segments = {s.name: s for s in base.segments}
    old_starts, start = {}, 0
    for segment in base.segments:
        old_starts[segment.name], start = start, start + segment.width
    rows: list[Optional[int]] = []
    for segment in current.segments:
        old = old_segments.get(segment.name)
        mapped = _segment_rows(segment, old, current, base)
        rows += [None if r is None else old_starts[segment.name] + r for r in mapped]
    return rows


def _layer_values(name: str, fresh: Sequence[np.ndarray], old: Sequence[np.ndarray], current: Snapshot,
                  base: Snapshot) -> tuple[list[np.ndarray], bool]:
    """(new values, remapped?) of one layer; ColdStart when its shapes changed for another reason."""
    rows = None
    same_columns = len(fresh) == len(old) and fresh[0].shape[1:] == old[0].shape[1:]
    if name == FIRST_HIDDEN and same_columns:
        rows = _first_hidden_rows(current, base)
    elif name in current.embeddings and name in base.embeddings and same_columns:
        new, previous = current.embeddings[name], base.embeddings[name]
        rows = _id_rows(new, previous, current.vocabularies.get(new.name), base.vocabularies.get(new.name))
    if rows is not None:
        if rows == list(range(len(rows))) and fresh[0].shape == old[0].shape:
            return [np.asarray(v) for v in old], False
        return [_gather(old[0], fresh[0], rows)] + [np.asarray(v) for v in old[1:]], True
    if [v.shape for v in fresh] != [v.shape for v in old]:
        raise ColdStart(f"layer {name!r} has weights {[v.shape for v in fresh]}, the base model "
                        f"{[v.shape for v in old]}: the architecture changed")
    return [np.asarray(v) for v in old], False


def transfer_weights(model, current: Snapshot, base: Snapshot, base_model: str) -> WarmStart:
    """Seeds `model` (freshly built; `current` is its own snapshot) from `base`, all or nothing.

    Raises ColdStart, leaving `model` untouched, when a shared layer changed shape for a reason other
    than the vocabularies, or when no layer is shared at all.
    """
    planned, copied, remapped, fresh = {}, [], [], []
    for name, values in current.layers.items():
        if name not in base.layers:
            fresh.append(name)
            continue
        planned[name], was_remapped = _layer_values(name, values, base.layers[name], current, base)
        (remapped if was_remapped else copied).append(name)
    if not planned:
        raise ColdStart(f"base model {base_model} shares no layer with this model")
    for name, values in planned.items():
        model.get_layer(name).set_weights(values)
    return WarmStart(base_model, copied=tuple(copied), remapped=tuple(remapped), fresh=tuple(fresh))


def warm_start(model, current: Snapshot, base_model: Optional[str]) -> WarmStart:
    """`transfer_weights` from the SavedModel directory `base_model`; a cold WarmStart says why not."""
    from absl import logging

    if not base_model:
        outcome = WarmStart(None, cold_reason="no blessed model yet (first run, or none was ever blessed)")
    else:
        try:
            outcome = transfer_weights(model, current, load(base_model), base_model)
        except ColdStart as exc:
            outcome = WarmStart(base_model, cold_reason=str(exc))
    if outcome.warm:
        logging.info("Warm start from %s: %d layers copied, %d remapped (vocabularies), %d fresh", base_model,
                     len(outcome.copied), len(outcome.remapped), len(outcome.fresh))
    else:
        logging.warning("Cold start: %s", outcome.cold_reason)
    return outcome
