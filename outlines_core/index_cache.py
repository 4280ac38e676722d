"""An on-disk cache of compiled regex indexes, so a second process starts without recompiling.

An entry is keyed by (engine version, regex, vocabulary fingerprint) and holds plain arrays (no pickle): the
DFA with its recorded refinement partitions, the states' mask classes and every mask computed so far, in
one file of a JSON header and the arrays' raw bytes, read with one read and taken as views (``np.savez``'s
zip members cost 1.3 to 3 ms to read, more than compiling a small regex again). Writes are atomic (a
temporary file renamed into place), so concurrent writers and readers never see half a file; an unreadable
or mismatching entry is rebuilt. The folder is ``$OUTLINES_CORE_CACHE_DIR`` or
``~/.cache/outlines_core/indexes``; ``OUTLINES_CORE_DISABLE_CACHE=1`` turns the cache off. At most
``MAX_ENTRIES`` files are kept (the least recently written go first).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from .index import Index
from .regex.dfa import Dfa
from .vocabulary import Vocabulary

#: Bump when the saved layout or the meaning of its arrays changes.
FORMAT_VERSION = "4"
MAX_ENTRIES = 512
#: An entry file: this magic, the JSON header's length (8 bytes, little-endian), the CRC-32 of everything after
#: it (4 bytes: a flipped bit anywhere is caught; 0.4 ms a megabyte to check), the header, then each array's
#: bytes at the offset the header gives (from the end of the header, 64-byte aligned).
_MAGIC = b"OCIDX" + FORMAT_VERSION.encode() + b"\n"
_SUFFIX = ".idx"
_ALIGNMENT = 64


def cache_dir() -> Path:
    return Path(os.environ.get("OUTLINES_CORE_CACHE_DIR") or Path.home() / ".cache" / "outlines_core" / "indexes")


def enabled() -> bool:
    return os.environ.get("OUTLINES_CORE_DISABLE_CACHE", "") not in ("1", "true", "yes")


@functools.lru_cache(maxsize=1)
def engine_version() -> str:
    """The package version plus a hash of the sources that decide what an index contains, so an edited
    engine (a development checkout) never reads entries an older one wrote."""
    from . import __version__

    digest = hashlib.sha256(FORMAT_VERSION.encode())
    package = Path(__file__).resolve().parent
    deciding = [
        "index.py", "lookahead.py", "trie_walk.py", "loop_walk.py", "loop_walk_numpy.py", "vocabulary.py", "arrays.py",
        "text_runs.py", "sharing.py", "_native.c", "_regex_nfa.c",
    ]
    # A built wheel may leave out the C sources (its compiled module is there); the Python sources are not optional.
    sources = [package / name for name in deciding if not name.endswith(".c") or (package / name).exists()]
    sources += list((package / "regex").glob("*.py"))
    for source in sorted(sources):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def entry_path(pattern: str, vocabulary: Vocabulary, folder: Path | None = None) -> Path:
    """Where the entry of (engine version, ``pattern``, ``vocabulary``) lives."""
    key = "\0".join([engine_version(), pattern, vocabulary.fingerprint])
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return (Path(folder) if folder is not None else cache_dir()) / f"{digest[:40]}{_SUFFIX}"


def save(index: Index, folder: Path | None = None) -> Path:
    """Write ``index`` (its DFA and the masks computed so far) atomically."""
    path = entry_path(index.pattern, index.vocabulary, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    masks = index.computed_class_masks
    # Each distinct mask once (many classes share one), and per class the row of its mask.
    classes = sorted(masks)
    row_of: dict[int, int] = {}
    rows: list[np.ndarray] = []
    for klass in classes:
        if id(masks[klass]) not in row_of:
            row_of[id(masks[klass])] = len(rows)
            rows.append(masks[klass])
    which = np.array([row_of[id(masks[klass])] for klass in classes], dtype=np.int64)
    stacked = np.stack(rows) if rows else np.zeros((0, index.num_words), dtype=np.int32)
    dfa = index.dfa
    # The refinement partitions (``Dfa.indistinguishable_within``), which the first walks of a loaded index
    # ask for: without them its first visit would refine the DFA again (6 ms on nested-8).
    partitions = dfa.recorded_refinement()
    arrays = {
        "transitions": dfa.transitions,
        "accepting": dfa.accepting,
        "byte_classes": dfa.byte_classes,
        "class_transitions": dfa.class_transitions,
        "mask_class": index._mask_class,
        "refinement_rounds": np.array([-1 if rounds is None else rounds for rounds, _ in partitions], dtype=np.int64),
        "refinement_groups": np.stack([groups for _, groups in partitions]).astype(np.int32),
        "classes": np.array(classes, dtype=np.int64),
        "which": which,
        "masks": stacked,
    }
    meta = {"pattern": index.pattern, "fingerprint": index.vocabulary.fingerprint, "engine": engine_version(),
            "start": int(dfa.start)}
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            _write_entry(stream, meta, arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _prune(path.parent)
    return path


def load(pattern: str, vocabulary: Vocabulary, folder: Path | None = None) -> Index | None:
    """The cached index of ``pattern`` for ``vocabulary``, or ``None`` (absent, unreadable or stale)."""
    path = entry_path(pattern, vocabulary, folder)
    try:
        entry = _read_entry(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: the caller rebuilds (and overwrites it)
    if entry is None:
        return None
    meta, data = entry
    try:
        if (
            meta["pattern"] != pattern
            or meta["fingerprint"] != vocabulary.fingerprint
            or meta["engine"] != engine_version()
        ):
            return None
        transitions, mask_class = data["transitions"], data["mask_class"]
        n_states = transitions.shape[0] if transitions.ndim == 2 else -1
        if transitions.shape != (n_states, 256) or mask_class.shape != (n_states,):
            return None
        if n_states < 2 or transitions.min() < 0 or transitions.max() >= n_states:
            return None
        if not 1 <= int(meta["start"]) < n_states or mask_class.min() < 0 or mask_class.max() >= n_states:
            return None
        rounds, groups = data["refinement_rounds"], data["refinement_groups"]
        if groups.shape != (rounds.size, n_states) or rounds.size == 0 or rounds[-1] != -1:
            return None
        if groups.min() < 0 or groups.max() >= n_states:
            return None
        dfa = Dfa(
            transitions=transitions,
            accepting=data["accepting"],
            start=int(meta["start"]),
            byte_classes=data["byte_classes"],
            class_transitions=data["class_transitions"],
            pattern=pattern,
            _refinement=tuple(
                (None if count == -1 else count, partition.astype(np.int64))
                for count, partition in zip(rounds.tolist(), groups)
            ),
        )
        masks = data["masks"]
        if masks.ndim != 2 or masks.dtype != np.int32 or masks.shape[1] != (vocabulary.size + 31) // 32:
            return None
        classes, which = data["classes"], data["which"]
        if classes.ndim != 1 or which.shape != classes.shape:
            return None
        if which.size and (which.min() < 0 or which.max() >= masks.shape[0]):
            return None
        class_rows = dict(zip(classes.tolist(), which.tolist()))
        return Index.from_parts(dfa, vocabulary, mask_class, masks, class_rows)
    except (KeyError, ValueError, IndexError, TypeError):
        return None  # a header or arrays that do not fit together: rebuilt like a damaged file


def _write_entry(stream, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """``meta`` (JSON values) and ``arrays`` as an entry file (``_MAGIC``)."""
    specs, offset = [], 0
    contiguous = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    for name, array in contiguous.items():
        offset = -(-offset // _ALIGNMENT) * _ALIGNMENT
        specs.append([name, array.dtype.str, list(array.shape), offset])
        offset += array.nbytes
    header = json.dumps({**meta, "arrays": specs}).encode()
    parts = [header]
    written = 0
    for (_, _, _, at), array in zip(specs, contiguous.values()):
        parts.append(b"\0" * (at - written))
        parts.append(array.tobytes())
        written = at + array.nbytes
    checksum = 0
    for part in parts:
        checksum = zlib.crc32(part, checksum)
    stream.write(_MAGIC + struct.pack("<QI", len(header), checksum))
    for part in parts:
        stream.write(part)


def _read_entry(path: Path) -> tuple[dict, dict[str, np.ndarray]] | None:
    """An entry file's header and its arrays (read-only views of one read of the file), or None when it is
    not one (another format, truncated, arrays past its end)."""
    data = path.read_bytes()
    start = len(_MAGIC) + 12
    if not data.startswith(_MAGIC) or len(data) < start:
        return None
    length, checksum = struct.unpack_from("<QI", data, len(_MAGIC))
    if start + length > len(data) or zlib.crc32(memoryview(data)[start:]) != checksum:
        return None
    meta = json.loads(data[start : start + length])
    body = start + length
    arrays = {}
    for name, dtype, shape, offset in meta.pop("arrays"):
        dtype = np.dtype(dtype)
        if dtype.hasobject or offset < 0 or any(extent < 0 for extent in shape):
            return None
        count = int(np.prod(shape, dtype=np.int64))
        if body + offset + count * dtype.itemsize > len(data):
            return None
        arrays[name] = np.frombuffer(data, dtype=dtype, count=count, offset=body + offset).reshape(shape)
    return meta, arrays


def load_or_build(pattern: str, vocabulary: Vocabulary, folder: Path | None = None) -> Index:
    """``load`` if the entry is there, else ``Index(pattern, vocabulary)`` saved for next time."""
    if not enabled():
        return Index(pattern, vocabulary)
    index = load(pattern, vocabulary, folder)
    if index is not None:
        return index
    index = Index(pattern, vocabulary)
    try:
        save(index, folder)
    except OSError:  # a read-only or full disk costs the next process a compile, nothing more
        pass
    return index


def _prune(folder: Path) -> None:
    """Keep the newest ``MAX_ENTRIES`` entries; drop temporary files a killed writer left behind."""
    now = time.time()
    stamped = []
    for path in folder.iterdir():
        try:
            modified = path.stat().st_mtime
        except OSError:  # removed meanwhile by another process
            continue
        if path.suffix == _SUFFIX:
            stamped.append((modified, path))
        elif path.suffix == ".npz":  # the zip entries of earlier versions, never read again
            path.unlink(missing_ok=True)
        elif path.suffix == ".tmp" and now - modified > 3600:
            path.unlink(missing_ok=True)
    stamped.sort()
    for _, stale in stamped[: max(0, len(stamped) - MAX_ENTRIES)]:
        stale.unlink(missing_ok=True)
