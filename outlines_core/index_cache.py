"""An on-disk cache of compiled regex indexes, so a second process starts without recompiling.

An entry is keyed by (engine version, regex, vocabulary fingerprint) and holds plain arrays (``np.savez``,
no pickle): the DFA with its recorded refinement partitions, the states' mask classes and every mask
computed so far. Writes are atomic (a
temporary file renamed into place), so concurrent writers and readers never see half a file; an unreadable
or mismatching entry is rebuilt. The folder is ``$OUTLINES_CORE_CACHE_DIR`` or
``~/.cache/outlines_core/indexes``; ``OUTLINES_CORE_DISABLE_CACHE=1`` turns the cache off. At most
``MAX_ENTRIES`` files are kept (the least recently written go first).
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from .index import Index
from .regex.dfa import Dfa
from .vocabulary import Vocabulary

#: Bump when the saved layout or the meaning of its arrays changes.
FORMAT_VERSION = "2"
MAX_ENTRIES = 512


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
        "_native.c",
    ]
    # A built wheel may leave out the C source (its compiled module is there); the Python sources are not optional.
    sources = [package / name for name in deciding if name != "_native.c" or (package / name).exists()]
    sources += list((package / "regex").glob("*.py"))
    for source in sorted(sources):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def entry_path(pattern: str, vocabulary: Vocabulary, folder: Path | None = None) -> Path:
    """Where the entry of (engine version, ``pattern``, ``vocabulary``) lives."""
    key = "\0".join([engine_version(), pattern, vocabulary.fingerprint])
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return (Path(folder) if folder is not None else cache_dir()) / f"{digest[:40]}.npz"


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
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(
                stream,
                pattern=np.array(index.pattern),
                fingerprint=np.array(index.vocabulary.fingerprint),
                engine=np.array(engine_version()),
                transitions=dfa.transitions,
                accepting=dfa.accepting,
                start=np.array(dfa.start),
                byte_classes=dfa.byte_classes,
                class_transitions=dfa.class_transitions,
                mask_class=index._mask_class,
                refinement_rounds=np.array([-1 if rounds is None else rounds for rounds, _ in partitions], dtype=np.int64),
                refinement_groups=np.stack([groups for _, groups in partitions]).astype(np.int32),
                classes=np.array(classes, dtype=np.int64),
                which=which,
                masks=stacked,
            )
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
        with np.load(path, allow_pickle=False) as data:
            if (
                str(data["pattern"]) != pattern
                or str(data["fingerprint"]) != vocabulary.fingerprint
                or str(data["engine"]) != engine_version()
            ):
                return None
            transitions, mask_class = data["transitions"], data["mask_class"]
            n_states = transitions.shape[0] if transitions.ndim == 2 else -1
            if transitions.shape != (n_states, 256) or mask_class.shape != (n_states,):
                return None
            if n_states < 2 or transitions.min() < 0 or transitions.max() >= n_states:
                return None
            rounds, groups = data["refinement_rounds"], data["refinement_groups"]
            if groups.shape != (rounds.size, n_states) or rounds.size == 0 or rounds[-1] != -1:
                return None
            if groups.min() < 0 or groups.max() >= n_states:
                return None
            dfa = Dfa(
                transitions=transitions,
                accepting=data["accepting"],
                start=int(data["start"]),
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
    except (OSError, KeyError, ValueError, IndexError, zipfile.BadZipFile, EOFError):
        return None  # absent or damaged: the caller rebuilds (and overwrites it)


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
        if path.suffix == ".npz":
            stamped.append((modified, path))
        elif path.suffix == ".tmp" and now - modified > 3600:
            path.unlink(missing_ok=True)
    stamped.sort()
    for _, stale in stamped[: max(0, len(stamped) - MAX_ENTRIES)]:
        stale.unlink(missing_ok=True)
