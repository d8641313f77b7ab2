"""Build the plugins.qgis.org zip: one top folder `thaw_slump_mapper`, runtime files only.

Files come from git (so local junk never ships) plus the bundled checkpoint
model/weights/*.pt, minus everything a user's QGIS does not need: tests, tools, Makefile
fragments, CI files, caches. The zip is then checked with tools/check_plugin_zip.py.

    python tools/package_plugin.py [--output dist/thaw_slump_mapper.zip]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterable, List

REPO = Path(__file__).resolve().parent.parent
PLUGIN_FOLDER = "thaw_slump_mapper"
# Top-level entries that never ship.
EXCLUDED_TOP = {
    "tests", "tools", "mk", ".ci", ".github", ".gitlab-ci.yml", ".venv", ".stamps", "dist", "build", "out",
    "demo", "docs", "Makefile", ".gitignore", ".gitattributes", "requirements-dev.txt", "BENCHMARKS.md",
    "setup.cfg", "pyproject.toml", ".pre-commit-config.yaml", ".flake8",
}
EXCLUDED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ipynb_checkpoints", ".git"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".partial", ".orig", ".rej", ".swp", "~")
BUNDLED_WEIGHTS = "model/weights"


def tracked_files(repo: Path) -> List[str]:
    try:
        listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True)
        files = [f for f in listed.stdout.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        # Not a git checkout (an unpacked source archive): take what is on disk.
        files = [str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()]
    # The checkpoint and its ONNX graph (torch-free CPU detection) may be untracked (large
    # binaries); they ship anyway.
    files += [str(p.relative_to(repo)) for p in (repo / BUNDLED_WEIGHTS).glob("*.pt")]
    files += [str(p.relative_to(repo)) for p in (repo / BUNDLED_WEIGHTS).glob("*.onnx")]
    return sorted(set(files))


def shipped(relative: str) -> bool:
    parts = Path(relative).parts
    if not parts or parts[0] in EXCLUDED_TOP:
        return False
    if any(part in EXCLUDED_PARTS for part in parts):
        return False
    return not relative.endswith(EXCLUDED_SUFFIXES)


def build_zip(repo: Path, output: Path, files: Iterable[str]) -> List[str]:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    written = []
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for relative in files:
            source = repo / relative
            if not source.is_file() or source.is_symlink():
                continue  # deleted in the working tree, or a link (the validator rejects links)
            archive.write(source, f"{PLUGIN_FOLDER}/{relative}")
            written.append(relative)
    partial.replace(output)
    return written


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "dist" / f"{PLUGIN_FOLDER}.zip")
    args = parser.parse_args(argv)
    files = [f for f in tracked_files(REPO) if shipped(f)]
    written = build_zip(REPO, args.output, files)
    size_mb = args.output.stat().st_size / 1e6
    weights = [f for f in written if f.startswith(BUNDLED_WEIGHTS) and f.endswith(".pt")]
    graphs = [f for f in written if f.startswith(BUNDLED_WEIGHTS) and f.endswith(".onnx")]
    print(f"{args.output}: {len(written)} files, {size_mb:.1f} MB" + ("" if weights else " (WARNING: no bundled checkpoint in model/weights)")
          + ("" if graphs else " (WARNING: no ONNX graph in model/weights: CPU detection will need torch; run `make onnx-model`)"))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from check_plugin_zip import check_zip

    problems = check_zip(args.output)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
