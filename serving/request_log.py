"""Request logging: TF Serving's per-model `logging_config`, written as `PredictionLog` TFRecord files.

Open-source TF Serving parses `logging_config` but registers no log collector (tensorflow/serving#408,
#1846), so live traffic has no record to compare training data with. `tfxpipe serve` writes one: a
`sampling_rate` fraction of each model's successful Predict/Classify/Regress calls (REST and gRPC; a
REST call is logged as the gRPC request it is equivalent to) becomes a `PredictionLog` record (the
format TFX's BulkInferrer writes and `assets.extra/tf_serving_warmup_requests` holds), with its
`log_metadata` (model spec of the version that answered, sampling config, timestamp).

Files: `<filename_prefix>-<UTC time>-<pid>-<sequence>.tfrecord`, uncompressed TFRecord framing. A file
is written under a hidden in-progress name beside it and renamed into place when it reaches
`max_file_bytes` or is `rotate_seconds` old (or the server stops), so readers only ever see complete
files (`completed_files`, `read_prediction_logs`).

The bound on a request: logging costs it one random draw and, when sampled, one non-blocking put of
references on a bounded queue (no copy, no serialization: a few microseconds). A background thread
builds, serializes and writes the records; when it falls behind, the queue fills and further sampled
requests are dropped, counted by outcome (`written`, `dropped`, `failed`) through `on_outcome`
(Prometheus: `tfxpipe_request_log_records_total`), never waited for.
"""
from __future__ import annotations

import dataclasses
import glob
import gzip
import itertools
import logging
import os
import queue
import random
import struct
import threading
import time
from typing import Any, Callable, Iterator, Sequence

from serving import protos
from serving.model_config import ModelConfig, RequestLogConfig

log = logging.getLogger(__name__)

SUFFIX = ".tfrecord"
IN_PROGRESS_SUFFIX = ".inprogress"
WRITTEN, DROPPED, FAILED = "written", "dropped", "failed"
#: The tags TF Serving loads a SavedModel with (recorded in each record's log_metadata).
SERVE_TAG = "serve"

#: Builds the record (a PredictionLog with one of its *_log fields set) on the writer thread.
RecordBuilder = Callable[[], Any]


# --- TFRecord framing (the format tf.io.TFRecordWriter writes), without TensorFlow ---------------------

def _masked_crc(data: bytes) -> int:
    import google_crc32c  # C implementation: ~1 µs for a 2 KB record

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One TFRecord: length, masked CRC32C of the length, data, masked CRC32C of the data."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked_crc(length)) + data + struct.pack("<I", _masked_crc(data))


def read_records(path: str) -> Iterator[bytes]:
    """The records of a TFRecord file; ValueError on a corrupt or truncated record.

    A `.gz` file is read through gzip, as Beam's AUTO compression (ImportExampleGen) reads it."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        while header := f.read(12):
            if len(header) < 12:
                raise ValueError(f"{path}: truncated record header")
            length, length_crc = struct.unpack("<QI", header)
            if _masked_crc(header[:8]) != length_crc:
                raise ValueError(f"{path}: corrupt record length")
            data, footer = f.read(length), f.read(4)
            if len(data) < length or len(footer) < 4:
                raise ValueError(f"{path}: truncated record")
            if _masked_crc(data) != struct.unpack("<I", footer)[0]:
                raise ValueError(f"{path}: corrupt record data")
            yield data


def completed_files(location: str) -> list[str]:
    """Complete log files: every `*.tfrecord` in a directory, or `<location>-*.tfrecord` for a prefix."""
    pattern = os.path.join(location, "*" + SUFFIX) if os.path.isdir(location) else f"{location}-*{SUFFIX}"
    return sorted(glob.glob(pattern))


def read_prediction_logs(location: str) -> Iterator[Any]:
    """PredictionLog messages from the complete files of `location` (see `completed_files`)."""
    prediction_log_class = protos.load().prediction_log_pb2.PredictionLog
    for path in completed_files(location):
        for record in read_records(path):
            yield prediction_log_class.FromString(record)


# --- files ---------------------------------------------------------------------------------------------

class RotatingRecordFile:
    """TFRecord files under one prefix, each renamed into place once full, old, or closed."""

    _sequence = itertools.count()  # process-wide: two prefixes in one directory never collide

    def __init__(self, prefix: str, max_bytes: int, rotate_seconds: float, clock: Callable[[], float] = time.time):
        self.prefix, self._max_bytes, self._rotate_seconds, self._clock = prefix, max_bytes, rotate_seconds, clock
        self._file = None
        self._path = ""
        self._opened = 0.0
        self._size = 0

    def write(self, record: bytes) -> None:
        if self._file is None:
            self._open()
        data = frame(record)
        self._file.write(data)
        self._size += len(data)
        if self._size >= self._max_bytes:
            self.close()

    def rotate_if_old(self) -> None:
        if self._file is not None and self._clock() - self._opened >= self._rotate_seconds:
            self.close()

    def close(self) -> None:
        """Completes the current file (renamed to its final name); the next write opens a new one."""
        if self._file is None:
            return
        file, self._file = self._file, None
        file.close()
        os.replace(self._in_progress_path(), self._path)

    def _open(self) -> None:
        self._opened = self._clock()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._opened))
        self._path = f"{self.prefix}-{stamp}-{os.getpid()}-{next(self._sequence):06d}{SUFFIX}"
        os.makedirs(os.path.dirname(os.path.abspath(self._path)), exist_ok=True)
        self._file = open(self._in_progress_path(), "wb")
        self._size = 0

    def _in_progress_path(self) -> str:
        directory, name = os.path.split(self._path)
        return os.path.join(directory, f".{name}{IN_PROGRESS_SUFFIX}")


# --- the logger ----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Target:
    model_name: str
    config: RequestLogConfig


class RequestLogger:
    """Samples requests per model, queues them, and writes them on one background thread."""

    def __init__(self, queue_size: int, max_file_bytes: int, rotate_seconds: float,
                 on_outcome: Callable[[str, str], None] = lambda model_name, outcome: None,
                 sample: Callable[[], float] = random.random, clock: Callable[[], float] = time.time):
        self._queue: queue.Queue = queue.Queue(max(1, queue_size))
        self._max_file_bytes, self._rotate_seconds = max_file_bytes, rotate_seconds
        self._on_outcome, self._sample, self._clock = on_outcome, sample, clock
        self._targets: dict[str, _Target] = {}  # replaced, never mutated: the request path reads it unlocked
        self._files: dict[str, RotatingRecordFile] = {}  # the writer thread's alone
        self._thread: threading.Thread | None = None
        self._closed = False

    def configure(self, configs: Sequence[ModelConfig]) -> None:
        """Applies the models' `logging_config`s (at start-up and on every config reload)."""
        self._targets = {c.name: _Target(c.name, c.request_log) for c in configs if c.request_log is not None}
        if self._targets and self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._drain, name="request-log", daemon=True)
            self._thread.start()

    def log(self, model_name: str, build: RecordBuilder) -> None:
        """Request path: maybe queue `build` for writing; never blocks, never raises."""
        target = self._targets.get(model_name)
        if target is None or self._sample() >= target.config.sampling_rate:
            return
        try:
            self._queue.put_nowait((target, build, self._clock()))
        except queue.Full:
            self._on_outcome(model_name, DROPPED)

    def close(self, timeout: float = 30.0) -> None:
        """Writes what is queued, completes the open files and stops the writer thread."""
        self._closed = True
        if self._thread is not None:
            self._queue.put((None, None, 0.0))
            self._thread.join(timeout)
            self._thread = None

    def _drain(self) -> None:
        poll = max(0.05, min(1.0, self._rotate_seconds))
        while True:
            try:
                target, build, timestamp = self._queue.get(timeout=poll)
            except queue.Empty:
                target = build = None
            else:
                if target is None:
                    break
                self._write(target, build, timestamp)
            self._rotate()
        for file in self._files.values():
            self._complete(file)
        self._files.clear()

    def _write(self, target: _Target, build: RecordBuilder, timestamp: float) -> None:
        try:
            record = build()
            _fill_metadata(record, target.config, timestamp)
            file = self._files.get(target.config.filename_prefix)
            if file is None:
                file = self._files[target.config.filename_prefix] = RotatingRecordFile(
                    target.config.filename_prefix, self._max_file_bytes, self._rotate_seconds, self._clock)
            file.write(record.SerializeToString())
        except Exception:  # noqa: BLE001 - a logging failure must never reach a request or stop logging
            log.warning("request log for model %s: record not written", target.model_name, exc_info=True)
            self._on_outcome(target.model_name, FAILED)
            return
        self._on_outcome(target.model_name, WRITTEN)

    def _rotate(self) -> None:
        in_use = {t.config.filename_prefix for t in self._targets.values()}
        for prefix, file in list(self._files.items()):
            if prefix not in in_use:  # logging turned off or moved by a config reload
                self._complete(self._files.pop(prefix))
            else:
                try:
                    file.rotate_if_old()
                except OSError:
                    log.warning("request log %s: could not complete a file", prefix, exc_info=True)

    @staticmethod
    def _complete(file: RotatingRecordFile) -> None:
        try:
            file.close()
        except OSError:
            log.warning("request log %s: could not complete a file", file.prefix, exc_info=True)


def _fill_metadata(record: Any, config: RequestLogConfig, timestamp: float) -> None:
    """log_metadata as TF Serving's ServerRequestLogger fills it: who answered, how sampled, when."""
    entry = getattr(record, record.WhichOneof("log_type"))
    metadata = record.log_metadata
    metadata.model_spec.CopyFrom(entry.response.model_spec)
    metadata.sampling_config.sampling_rate = config.sampling_rate
    metadata.saved_model_tags.append(SERVE_TAG)
    metadata.timestamp_secs = int(timestamp)
