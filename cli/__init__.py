"""The command line: `python -m thaw_slump_mapper <subcommand>`. One module per subcommand,
each a thin front end over engine/, model/ or analysis/ exposing ``register(subparsers)``."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import List, Optional

from ..core.errors import Cancelled, UserError


def subcommand_modules() -> tuple:
    """The subcommand modules, in the order --help lists them (imported here, not at package
    import, so `import thaw_slump_mapper.cli` stays cheap; named, so "find usages" finds them)."""
    from . import (
        build_chips_command,
        change_command,
        demo_command,
        detect_batch_command,
        detect_command,
        evaluate_command,
        export_labels_command,
        morphometry_command,
        report_command,
        train_command,
    )

    return (
        detect_command,
        demo_command,
        morphometry_command,
        report_command,
        evaluate_command,
        export_labels_command,
        train_command,
        build_chips_command,
        change_command,
        detect_batch_command,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thaw_slump_mapper",
        description="Map retrogressive thaw slumps in satellite images (DeepLabv3+, Huang et al. 2020).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in subcommand_modules():
        module.register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    from .interrupts import INTERRUPTS

    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = lambda message, *_args, **_kwargs: f"warning: {message}\n"
    with INTERRUPTS.installed():
        try:
            return int(args.run(args) or 0)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except (Cancelled, KeyboardInterrupt):
            print("cancelled: no output was written and no existing file was changed", file=sys.stderr)
            return INTERRUPTS.exit_code()
        except Exception as err:  # noqa: BLE001 - a user never sees a traceback (THAW_SLUMP_DEBUG=1 shows it)
            if os.environ.get("THAW_SLUMP_DEBUG") == "1":
                raise
            first = (str(err).strip().splitlines() or [""])[0][:200]
            print(f"error: unexpected {type(err).__name__}: {first} (no output was written; please report this)", file=sys.stderr)
            return 1
