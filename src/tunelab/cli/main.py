"""Entry point. argparse, because the legacy `openai` CLI used it and its dotted verbs
(`api fine_tunes.create`, `tools fine_tunes.prepare_data`) map onto sub-parsers one to one.

Each verb-group module exposes `register(subparsers)`, and every command is a function
`(args) -> int`. Only this layer prints errors and chooses exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from tunelab import __version__
from tunelab.errors import TunelabError

# Verb-group modules, each with register(subparsers). Listed here so the tree shows the CLI.
GROUPS = ["tools", "api", "datasets", "models", "evaluate", "complete", "serve", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunelab",
        description="Fine-tune open language models locally with OpenAI's fine-tuning workflow.",
    )
    parser.add_argument("--version", action="version", version=f"tunelab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in GROUPS:
        # A missing or renamed verb module is a packaging bug: let the import error say so.
        importlib.import_module(f"tunelab.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if argv is None and len(sys.argv) == 1 else 2
    try:
        return int(args.func(args) or 0)
    except TunelabError as exc:
        print(f"Error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
