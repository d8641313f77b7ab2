"""The one output-safety rule, used by the command line, the dock and every Processing algorithm.

1. Every output is checked before any work starts: not a folder, a supported format, a folder
   that exists (or may be created) and accepts a new file, and not one of the run's inputs.
2. An existing file or layer is never touched without an explicit overwrite; a layer whose
   ``review`` field shows human edits is replaced only when the user named that very layer.
3. Outputs are written under temporary names and moved into place only when complete, so
   an old output survives any failure, cancel or kill. A new layer in an existing GeoPackage
   is written to a temporary GeoPackage first and copied in by one SQLite transaction.

No QGIS or Qt here: the front ends call these functions and map ``UserError`` to their own
one-line messages. See docs/OUTPUTS.md.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence

from ..core.errors import UserError

# Vector formats in which every detection field survives (names, full-length text, CRS).
VECTOR_DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".fgb": "FlatGeobuf"}
SHAPEFILE_NAME_LIMIT, SHAPEFILE_TEXT_LIMIT = 10, 254
SHAPEFILE_REFUSAL = (
    "a Shapefile cuts field names to 10 characters and text to 254, so fields such as perimeter_m and the "
    "model's outline (orig_wkt) would be lost"
)
REFUSED_VECTOR_FORMATS = {
    ".txt": "that is a Geoconcept text file without a CRS",
    ".gxt": "that is a Geoconcept text file without a CRS",
    ".csv": "CSV keeps no CRS",
    ".kml": "KML forces WGS84 and drops field types",
}
PARTIAL_MARK = ".tsm-partial-"  # every temporary output name holds this, so leftovers are recognisable
UNREVIEWED_VALUES = ("", "unreviewed")


def _describe(path: Path) -> str:
    return path.name or str(path)


def same_file(a: Path | str, b: Path | str) -> bool:
    """True when both names lead to one file (links and relative paths resolved)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _existing_ancestor(folder: Path) -> Path:
    folder = folder.resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_folder_accepts_files(folder: Path, what: str, create: bool = False) -> None:
    """Refuse (one line) a folder that is missing (unless ``create``), not a folder, or read-only.

    Writability is tested by creating and deleting a probe file: permission bits lie for root,
    for read-only mounts and for /proc.
    """
    folder = Path(folder)
    probe_in = folder
    if not folder.exists():
        if not create:
            raise UserError(f"The folder {folder} for the {what} does not exist; create it or choose another output.")
        probe_in = _existing_ancestor(folder)
    if not probe_in.is_dir():
        raise UserError(f"The folder {probe_in} for the {what} does not exist ({probe_in.name} is a file); choose another output.")
    try:
        handle, probe = tempfile.mkstemp(prefix=PARTIAL_MARK + "probe-", dir=probe_in)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise UserError(f"Cannot write the {what} to {folder} ({err.strerror or err}); choose a folder you can write to.") from None


def check_not_an_input(path: Path, inputs: Iterable[Path | str | None], what: str) -> None:
    for source in inputs:
        if source and same_file(path, source):
            raise UserError(f"The {what} {_describe(path)} is also an input of this run; choose another name (inputs are never overwritten).")


def check_file_output(
    path: Path | str,
    what: str,
    suffixes: Sequence[str],
    inputs: Iterable[Path | str | None] = (),
    overwrite: bool = False,
    create_folder: bool = False,
) -> Path:
    """Check one single-file output (raster, HTML, JSON, checkpoint) before any work."""
    if not str(path).strip():
        raise UserError(f"Give a file name for the {what}.")
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"The {what} {path} is a folder; give a file name ending in {suffixes[0]}.")
    if path.suffix.lower() not in suffixes:
        raise UserError(f"Write the {what} to a {' or '.join(suffixes)} file (got {_describe(path)}).")
    check_not_an_input(path, inputs, what)
    check_folder_accepts_files(path.parent, what, create=create_folder)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise UserError(f"{_describe(path)} already exists; choose a new name for the {what}, or ask to overwrite it explicitly.")
        if not path.is_file():
            raise UserError(f"{path} exists and is not a regular file; choose another name for the {what}.")
    return path


@dataclass
class VectorTarget:
    """A checked polygon output: the file, its layer, and what already exists there."""

    path: Path
    layer: str
    driver: str
    file_exists: bool
    layer_exists: bool
    overwrite: bool
    replace_file: bool = False  # an existing file without layers is replaced whole (overwrite only)


def vector_driver(path: Path, field_names: Optional[Sequence[str]] = None) -> str:
    """The OGR driver for an output, refusing formats that would lose fields. A Shapefile is
    accepted only for a known schema whose names all fit (text length is checked on writing)."""
    suffix = path.suffix.lower()
    if suffix == ".shp":
        if field_names is not None and all(len(name) <= SHAPEFILE_NAME_LIMIT for name in field_names):
            return "ESRI Shapefile"
        raise UserError(f"Cannot write {_describe(path)}: {SHAPEFILE_REFUSAL}; write a .gpkg (GeoPackage) instead.")
    if suffix in REFUSED_VECTOR_FORMATS:
        raise UserError(f"Cannot write {_describe(path)}: {REFUSED_VECTOR_FORMATS[suffix]}; write a .gpkg (GeoPackage) instead.")
    if suffix not in VECTOR_DRIVERS:
        raise UserError(f"Write the polygons to a .gpkg file (or .geojson, .fgb); {_describe(path)} is not a supported polygon format.")
    return VECTOR_DRIVERS[suffix]


def reviewed_feature_count(path: Path, layer: Optional[str]) -> int:
    """How many features of a layer carry a human review (review is set and not 'unreviewed')."""
    import fiona

    try:
        with fiona.open(str(path), layer=layer) as src:
            if "review" not in src.schema.get("properties", {}):
                return 0
            return sum(1 for feat in src if str(feat.properties.get("review") or "").strip().lower() not in UNREVIEWED_VALUES)
    except Exception:  # noqa: BLE001 - an unreadable layer counts as edited: never replace what we cannot inspect
        return 1


def _check_existing_file_writable(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"{path} exists and is not a regular file; choose another output.")
    if not os.access(path, os.W_OK):
        raise UserError(f"{_describe(path)} is read-only; choose another output or make it writable.")


def check_vector_output(
    path: Path | str,
    layer: str,
    inputs: Iterable[tuple] = (),
    overwrite: bool = False,
    layer_named: bool = True,
    field_names: Optional[Sequence[str]] = None,
) -> VectorTarget:
    """Check a polygon output before any work.

    ``inputs``: (file, layer or None) pairs the run reads; writing over one of them is refused.
    ``layer_named``: the user named this layer explicitly (a human-edited layer is replaced
    only then, and only with ``overwrite``).
    """
    from .vector_io import list_layers

    if not str(path).strip():
        raise UserError("Give a file name for the polygons.")
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"The polygon output {path} is a folder; give a file name ending in .gpkg.")
    driver = vector_driver(path, field_names)
    layer = (layer or "").strip()
    if not layer:
        raise UserError("Give a layer name for the polygons.")
    if layer.startswith(PARTIAL_MARK.strip(".")):
        raise UserError(f"Layer names starting with {PARTIAL_MARK.strip('.')} are reserved; choose another layer name.")
    multi_layer = driver == "GPKG"
    layer_named = layer_named or not multi_layer  # a single-layer file is named by its file name
    for source, source_layer in inputs:
        if source and same_file(path, source) and (not multi_layer or source_layer in (None, layer)):
            raise UserError(f"The output {_describe(path)} (layer {layer}) is also an input of this run; choose another output.")
    check_folder_accepts_files(path.parent, "polygons")
    file_exists = path.exists()
    layer_exists = False
    if file_exists:
        _check_existing_file_writable(path)
        if multi_layer:
            _roll_back_interrupted_commit(path)
            layers = list_layers(path)
            if not layers:
                # Empty, or not a GeoPackage at all: it is replaced as a whole file, only with overwrite.
                if not overwrite:
                    raise UserError(
                        f"{_describe(path)} exists but holds no GeoPackage layer; "
                        "choose another output name, or ask to overwrite it explicitly."
                    )
                return VectorTarget(path, layer, driver, file_exists, False, overwrite, replace_file=True)
            layer_exists = layer in layers
        else:
            layer_exists = True
    if layer_exists:
        where = f"{_describe(path)} already holds a layer '{layer}'"
        if not overwrite:
            raise UserError(
                f"{where}; choose a new output or layer name, or ask to overwrite it explicitly "
                "(a corrected layer is never replaced silently)."
            )
        reviewed = reviewed_feature_count(path, layer if multi_layer else None)
        if reviewed and not layer_named:
            raise UserError(
                f"{where} with {reviewed} human-reviewed feature(s); it is replaced only when you name that layer "
                "explicitly (--layer, or table=/layername= in the output) together with overwrite."
            )
    return VectorTarget(path, layer, driver, file_exists, layer_exists, overwrite)


def _roll_back_interrupted_commit(path: Path) -> None:
    """A run killed inside its final SQLite transaction leaves ``<file>-journal``. The file's
    content was never changed: SQLite rolls a hot journal back on the next open, and a journal
    whose header was never completed (magic all zeros) is not hot and is only litter. Remove
    it, but only while holding the write lock, so no live transaction's journal is touched."""
    journal = Path(str(path) + "-journal")
    if not journal.exists():
        return
    import sqlite3

    try:
        connection = sqlite3.connect(str(path), timeout=1.0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")  # a hot journal is rolled back here; no other writer now
            with open(journal, "rb") as handle:
                stale = handle.read(8) in (b"", bytes(8))
            if stale:
                journal.unlink()
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except (sqlite3.Error, OSError):
        pass  # someone else is writing it: leave the journal to them


# ------------------------------------------------------------------ staging and commit


def staging_folder_for(final: Path) -> Path:
    """Where a temporary output is written: the system temp folder when it lies on the same
    file system (an os.replace is then atomic and a killed run leaves nothing beside the
    user's files), else the output folder itself."""
    target = _existing_ancestor(final.parent)
    system_tmp = Path(tempfile.gettempdir())
    try:
        if os.stat(system_tmp).st_dev == os.stat(target).st_dev:
            return system_tmp
    except OSError:
        pass
    return target


STALE_AFTER_S = 24 * 3600  # no run stages an output for a day; older leftovers are from killed runs
_swept: set = set()


def temporary_name(final: Path, folder: Optional[Path] = None) -> Path:
    """A unique temporary path for ``final``, keeping its suffix so GDAL picks the same driver."""
    folder = folder or staging_folder_for(final)
    _sweep_stale(folder)
    return folder / f"{PARTIAL_MARK}{uuid.uuid4().hex[:12]}-{final.stem}{final.suffix}"


def _sweep_stale(folder: Path) -> None:
    """Remove temporary outputs that killed runs (SIGKILL, power loss) left behind long ago."""
    import time

    if folder in _swept:
        return
    _swept.add(folder)
    now = time.time()
    try:
        for entry in folder.glob(PARTIAL_MARK + "*"):
            try:
                if now - entry.lstat().st_mtime > STALE_AFTER_S:
                    remove_quietly(entry)
            except OSError:
                pass
    except OSError:
        pass


SIDECARS = ("", "-wal", "-shm", "-journal", ".aux.xml", ".ovr")


def remove_quietly(path: Path) -> None:
    for suffix in SIDECARS:
        candidate = Path(str(path) + suffix)
        try:
            if candidate.is_dir() and not candidate.is_symlink():
                shutil.rmtree(candidate, ignore_errors=True)
            elif candidate.exists() or candidate.is_symlink():
                candidate.unlink()
        except OSError:
            pass


class StagedFile:
    """A single-file output written under a temporary name; ``commit`` moves it into place."""

    def __init__(self, final: Path | str, overwrite: bool = False) -> None:
        self.final = Path(final)
        self.overwrite = overwrite
        self.temp = temporary_name(self.final)
        self.done = False

    def commit(self) -> Path:
        if self.final.exists() and not self.overwrite:
            raise UserError(f"{_describe(self.final)} appeared while this run was working; it was left alone, choose another name.")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        if os.stat(self.temp.parent).st_dev != os.stat(self.final.parent).st_dev:
            # The staging folder lies on another file system: copy beside the output first.
            beside = temporary_name(self.final, self.final.parent)
            shutil.copy2(self.temp, beside)
            remove_quietly(self.temp)
            self.temp = beside
        os.replace(self.temp, self.final)
        remove_quietly(Path(str(self.temp) + ".aux.xml"))
        self.done = True
        return self.final

    def discard(self) -> None:
        if not self.done:
            remove_quietly(self.temp)


class StagedFolder:
    """A folder output (training chips) built in a temporary folder and moved into place."""

    def __init__(self, final: Path | str, overwrite: bool = False) -> None:
        self.final = Path(final)
        self.overwrite = overwrite
        self.temp = temporary_name(self.final)
        self.temp.mkdir(parents=True)
        self.done = False

    def commit(self, entries: Sequence[str]) -> Path:
        """Move ``entries`` (names inside the temporary folder) into the final folder.

        Replaced entries are first moved aside and deleted only once every new entry is in place.
        """
        self.final.mkdir(parents=True, exist_ok=True)
        aside: List[tuple] = []  # (final entry, where its old version waits)
        moved: List[Path] = []
        try:
            for name in entries:
                target = self.final / name
                if target.exists():
                    if not self.overwrite:
                        raise UserError(f"{target} appeared while this run was working; it was left alone, choose another folder.")
                    old = temporary_name(target, self.final)
                    os.replace(target, old)
                    aside.append((target, old))
                os.replace(self.temp / name, target)
                moved.append(target)
        except BaseException:
            for target in moved:
                remove_quietly(target)
            for target, old in aside:
                os.replace(old, target)
            raise
        for _, old in aside:
            remove_quietly(old)
        shutil.rmtree(self.temp, ignore_errors=True)
        self.done = True
        return self.final

    def discard(self) -> None:
        if not self.done:
            shutil.rmtree(self.temp, ignore_errors=True)


def check_folder_output(
    folder: Path | str, what: str, entries: Sequence[str], inputs: Iterable[Path | str | None] = (), overwrite: bool = False
) -> Path:
    """Check a folder output: it may exist, but the entries this run writes may not (unless overwrite)."""
    if not str(folder).strip():
        raise UserError(f"Give a folder for the {what}.")
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder; choose a folder for the {what}.")
    replaced = [folder / name for name in entries]
    for source in inputs:
        if not source:
            continue
        source = Path(source).resolve()
        if same_file(folder, source) or any(source == r.resolve() or r.resolve() in source.parents for r in replaced):
            raise UserError(f"The {what} {folder} would replace {source.name}, an input of this run; choose another folder.")
    check_folder_accepts_files(folder, what, create=True)
    clashes = [name for name in entries if (folder / name).exists()]
    if clashes and not overwrite:
        raise UserError(f"{folder} already holds {', '.join(clashes)}; choose an empty folder or ask to overwrite explicitly.")
    return folder


# ------------------------------------------------------------------ one call per front end

CHIP_EXPORT_ENTRIES = ("images", "masks", "manifest.csv", "labels_arts.geojson")


@contextmanager
def staged_file_output(
    path: Path | str,
    what: str,
    suffixes: Sequence[str],
    inputs: Iterable[Path | str | None] = (),
    overwrite: bool = False,
    progress=None,
    create_folder: bool = False,
) -> Iterator[Path]:
    """Check a single-file output, yield a temporary path to write, and move it into place
    only when the block finishes without error or cancel."""
    final = check_file_output(path, what, suffixes, inputs, overwrite, create_folder)
    staged = StagedFile(final, overwrite)
    try:
        yield staged.temp
        if progress is not None:
            progress.check_cancelled()
        staged.commit()
    finally:
        staged.discard()


@contextmanager
def staged_chip_export(
    folder: Path | str, inputs: Iterable[Path | str | None] = (), overwrite: bool = False, progress=None
) -> Iterator[Path]:
    """Check a training-chip folder, yield a temporary folder to fill, and move its entries
    (images/, masks/, manifest.csv, labels_arts.geojson) into place only when complete."""
    final = check_folder_output(folder, "chip folder", CHIP_EXPORT_ENTRIES, inputs, overwrite)
    staged = StagedFolder(final, overwrite)
    try:
        yield staged.temp
        if progress is not None:
            progress.check_cancelled()
        staged.commit([name for name in CHIP_EXPORT_ENTRIES if (staged.temp / name).exists()])
    finally:
        staged.discard()


# ------------------------------------------------------------------ test seam for kills


def reached(stage: str) -> None:
    """A named point in a run's output stages.

    Test seam: with THAW_SLUMP_SIGNAL_AT=<stage>:<SIGNAL> in the environment the process sends
    itself that signal here (tests kill runs at each stage and check no file was changed).
    """
    wanted = os.environ.get("THAW_SLUMP_SIGNAL_AT", "")
    if not wanted:
        return
    name, _, signame = wanted.partition(":")
    if name == stage:
        os.kill(os.getpid(), getattr(signal, signame or "SIGKILL"))
