"""Check a plugin zip against the rules plugins.qgis.org applies on upload.

    python tools/check_plugin_zip.py dist/thaw_slump_mapper.zip

Rules (plugins.qgis.org validator and the QGIS plugin publishing guide): a valid zip with
exactly one top folder whose name is a valid Python package name, holding __init__.py,
metadata.txt and a LICENSE file; metadata.txt with the mandatory fields (name,
qgisMinimumVersion, description, about, version, author, email, tracker, repository) and
valid values; no __pycache__, .pyc, hidden VCS folders or links; at most 25 MB.
Exit status 0 when every rule holds; each broken rule is printed on its own line.
"""
from __future__ import annotations

import configparser
import re
import stat
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import List

MAX_BYTES = 25 * 1024 * 1024
MANDATORY = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "tracker", "repository")
FORBIDDEN_PARTS = {"__pycache__", "__MACOSX", ".git", ".svn", ".hg", ".venv", "tests", ".pytest_cache"}
FORBIDDEN_SUFFIXES = (".pyc", ".pyo")
EXPECTED_FOLDER = "thaw_slump_mapper"


def check_zip(path: Path, expected_folder: str = EXPECTED_FOLDER) -> List[str]:
    """Every reason plugins.qgis.org would refuse the zip at ``path``; empty when it would accept it."""
    path = Path(path)
    if not path.is_file():
        return [f"{path} does not exist"]
    problems = _size_problems(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        return problems + [f"not a valid zip: {err}"]
    with archive:
        corrupt = archive.testzip()
        if corrupt is not None:
            problems.append(f"corrupt member {corrupt}")
        names = archive.namelist()
        tops = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts}
        if len(tops) != 1:
            problems.append(f"the zip must hold exactly one top folder, found {sorted(tops)}")
            return problems
        top = tops.pop()
        problems += _top_folder_problems(top, expected_folder)
        for info in archive.infolist():
            problems += _member_problems(info)
        problems += _required_file_problems(names, top)
        if f"{top}/metadata.txt" in names:
            problems += check_metadata(archive.read(f"{top}/metadata.txt").decode("utf-8"), names, top)
    return problems


def _size_problems(path: Path) -> List[str]:
    size = path.stat().st_size
    if size > MAX_BYTES:
        return [f"the zip is {size / 1e6:.1f} MB; plugins.qgis.org accepts at most 25 MB"]
    return []


def _top_folder_problems(top: str, expected_folder: str) -> List[str]:
    problems: List[str] = []
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", top):
        problems.append(f"top folder {top!r} is not a valid Python package name")
    if top != expected_folder:
        problems.append(f"top folder is {top!r}, expected {expected_folder!r}")
    return problems


def _member_problems(info: zipfile.ZipInfo) -> List[str]:
    """What is wrong with one entry: an unsafe path, a forbidden folder, compiled Python, a link."""
    problems: List[str] = []
    parts = PurePosixPath(info.filename).parts
    if info.filename.startswith("/") or ".." in parts:
        problems.append(f"unsafe path {info.filename}")
    if any(part in FORBIDDEN_PARTS for part in parts):
        problems.append(f"forbidden entry {info.filename}")
    if info.filename.endswith(FORBIDDEN_SUFFIXES):
        problems.append(f"compiled Python file {info.filename}")
    if stat.S_ISLNK(info.external_attr >> 16):
        problems.append(f"symbolic link {info.filename}")
    return problems


def _required_file_problems(names: List[str], top: str) -> List[str]:
    problems: List[str] = []
    for required in ("__init__.py", "metadata.txt"):
        if f"{top}/{required}" not in names:
            problems.append(f"{top}/{required} is missing")
    if not any(n in names for n in (f"{top}/LICENSE", f"{top}/LICENSE.txt", f"{top}/LICENSE.md")):
        problems.append(f"{top}/LICENSE is missing (plugins.qgis.org requires a licence file)")
    return problems


def check_metadata(text: str, names: List[str], top: str) -> List[str]:
    problems: List[str] = []
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    try:
        parser.read_string(text)
    except configparser.Error as err:
        return [f"metadata.txt does not parse: {err}"]
    if "general" not in parser:
        return ["metadata.txt has no [general] section"]
    meta = parser["general"]
    for key in MANDATORY:
        if not meta.get(key, "").strip():
            problems.append(f"metadata.txt lacks the mandatory field {key}")
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", meta.get("qgisMinimumVersion", "")):
        problems.append("qgisMinimumVersion must look like 3.22")
    if not re.fullmatch(r"\d+(\.\d+){0,3}([-._]?[A-Za-z0-9]+)?", meta.get("version", "")):
        problems.append(f"version {meta.get('version')!r} is not a version number")
    for key in ("tracker", "repository", "homepage"):
        value = meta.get(key, "")
        if value and not re.match(r"https?://\S+$", value):
            problems.append(f"{key} must be an http(s) URL")
    if meta.get("email") and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", meta.get("email", "")):
        problems.append("email is not an e-mail address")
    icon = meta.get("icon", "")
    if icon and f"{top}/{icon}" not in names:
        problems.append(f"the icon {icon} named in metadata.txt is not in the zip")
    if meta.get("hasProcessingProvider", "no").strip().lower() not in ("yes", "no", "true", "false"):
        problems.append("hasProcessingProvider must be yes or no")
    return problems


def main(argv: List[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: check_plugin_zip.py <plugin.zip>", file=sys.stderr)
        return 2
    problems = check_zip(Path(args[0]))
    for problem in problems:
        print(f"FAIL: {problem}")
    if not problems:
        print(f"OK: {args[0]} passes the plugins.qgis.org rules")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
