"""Which scenes a batch maps: a folder, a glob, a single raster, or a text/CSV list of paths
(each optionally with its own bands), each scene with a stable key and its acquisition date."""
from __future__ import annotations

import csv
import glob
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ...core.errors import UserError
from ..bands import parse_band_list

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img", ".nc")
LIST_SUFFIXES = (".txt", ".csv", ".lst")
# A date in a file name: 20210821, 2021-08-21 or 2021_08_21, not inside a longer number.
NAME_DATE = re.compile(r"(?<!\d)((?:19[7-9]|20\d)\d)[-_]?(0[1-9]|1[0-2])[-_]?(0[1-9]|[12]\d|3[01])(?!\d)")
# Metadata tags that hold when the scene was imaged (TIFFTAG_DATETIME is the file's own time: not used).
DATE_TAGS = ("ACQUISITION_DATE", "ACQUISITION_DATETIME", "ACQUIRED", "DATE_ACQUIRED", "SENSING_TIME",
             "SENSING_DATE", "DATATAKE_SENSING_START", "PRODUCT_START_TIME", "DATE")


@dataclass(frozen=True)
class Scene:
    path: Path              # absolute; workers on other machines must see the same path
    bands: Optional[Tuple[int, ...]]
    key: str                # file-name-safe and unique per (path, bands): names the scene's result file

    @property
    def name(self) -> str:
        return self.path.name


def scene_key(path: Path, bands: Optional[Sequence[int]]) -> str:
    """'<stem>-<8 hex>': readable, and different for the same name in two folders or two band choices."""
    digest = hashlib.sha1(f"{path}|{','.join(map(str, bands or ()))}".encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:60]
    return f"{stem}-{digest}"


def make_scene(path: Path, bands: Optional[Sequence[int]]) -> Scene:
    path = Path(path).expanduser().absolute()
    band_tuple = tuple(bands) if bands else None
    return Scene(path, band_tuple, scene_key(path, band_tuple))


def collect_scenes(inputs: str, default_bands: Optional[Sequence[int]] = None) -> List[Scene]:
    """The scenes named by ``inputs``, in a stable order; refuses an input that names none."""
    text = str(inputs).strip()
    if not text:
        raise UserError("Give the scenes to map: a folder, a glob such as 'scenes/*.tif', or a .txt/.csv list of paths.")
    path = Path(text).expanduser()
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)
        scenes = [make_scene(p, default_bands) for p in found]
        where = f"folder {path}"
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        scenes = read_scene_list(path, default_bands)
        where = f"list {path.name}"
    elif path.is_file():
        scenes, where = [make_scene(path, default_bands)], str(path)
    elif glob.has_magic(text):
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        scenes = [make_scene(p, default_bands) for p in found if not p.name.endswith(".aux.xml")]
        where = f"pattern {text}"
    else:
        raise UserError(f"{text} is not a folder, a file, a list or a glob that exists; check the path.")
    if not scenes:
        raise UserError(f"No scenes found in the {where}; give rasters ({', '.join(RASTER_SUFFIXES)}) or a list of paths.")
    return scenes


def read_scene_list(list_path: Path, default_bands: Optional[Sequence[int]]) -> List[Scene]:
    """A .csv with a 'path' column (optional 'bands', e.g. "3,2,1"), or a text file with one
    path a line, optionally followed by its bands ('scene.tif 3,2,1'); '#' starts a comment.
    Relative paths are relative to the list's folder."""
    rows = _csv_rows(list_path) if list_path.suffix.lower() == ".csv" else _text_rows(list_path)
    scenes = []
    for line_no, (path_text, bands_text) in rows:
        path = Path(path_text).expanduser()
        if not path.is_absolute():
            path = list_path.parent / path
        try:
            bands = parse_band_list(",".join(re.split(r"[\s,;]+", bands_text.strip()))) if bands_text.strip() else default_bands
        except UserError as err:
            raise UserError(f"{list_path.name} line {line_no}: {err}") from None
        scenes.append(make_scene(path, bands))
    return scenes


def _csv_rows(list_path: Path) -> List[Tuple[int, Tuple[str, str]]]:
    with open(list_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip().lower(): name for name in (reader.fieldnames or [])}
        path_column = next((columns[c] for c in ("path", "scene", "image", "file") if c in columns), None)
        if path_column is None:
            raise UserError(f"{list_path.name} needs a header with a 'path' column (and optionally 'bands').")
        bands_column = columns.get("bands")
        return [
            (reader.line_num, (row[path_column].strip(), (row.get(bands_column) or "") if bands_column else ""))
            for row in reader if (row.get(path_column) or "").strip()
        ]


def _text_rows(list_path: Path) -> List[Tuple[int, Tuple[str, str]]]:
    rows = []
    for line_no, line in enumerate(list_path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        head, _, tail = line.rpartition(" ")
        if head and re.fullmatch(r"\d+(?:[,;]\d+)*", tail):
            rows.append((line_no, (head.strip(), tail)))
        else:
            rows.append((line_no, (line, "")))
    return rows


def acquisition_date(tags: Dict[str, str], file_name: str) -> str:
    """'YYYY-MM-DD' from an acquisition tag, else from the file name, else ''."""
    upper = {str(k).upper(): str(v) for k, v in tags.items()}
    for tag in DATE_TAGS:
        if tag in upper:
            found = NAME_DATE.search(upper[tag].replace(":", "-"))
            if found:
                return "-".join(found.groups())
    found = NAME_DATE.search(file_name)
    return "-".join(found.groups()) if found else ""
