"""Entry point. argparse, because the legacy `openai` CLI used it and its dotted verbs
(`api fine_tunes.create`, `tools fine_tunes.prepare_data`) map onto sub-parsers one to one.

Each verb-group module exposes `register(subparsers)`, and every command is a function
`(args) -> int`. Only this layer prints errors and chooses exit codes.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from tunelab import __version__
from tunelab.errors import EXIT_CODES, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, TunelabError

# Verb-group modules, each with register(subparsers). Listed here so the tree shows the CLI.
GROUPS = ["tools", "api", "datasets", "labels", "models", "evaluate", "complete", "serve", "monitor", "feedback", "logs",
          "worker", "store", "demo"]


_MACHINE_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM}
"""OSErrors that the machine, not tunelab, causes: main reports them in one paragraph, exit 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunelab",
        description="Fine-tune open language models locally with OpenAI's fine-tuning workflow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `tunelab COMMAND --help` (e.g. `tunelab api fine_tunes.create --help`) for a command's options.\n\n"
               "Exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"tunelab {__version__}",
                        help="Show the version and exit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in GROUPS:
        # A missing or renamed verb module is a packaging bug: let the import error say so.
        importlib.import_module(f"tunelab.cli.{name}").register(sub)
    for each in iter_parsers(parser):
        # `tunelab api` without a verb shows the help of `api`, not of `tunelab`.
        each.set_defaults(help_parser=each)
        for action in each._actions:
            if isinstance(action, argparse._HelpAction):
                action.help = "Show this help message and exit."
    return parser


def iter_parsers(parser: argparse.ArgumentParser):
    """The parser and every sub-parser below it, depth first (for the help checks in the tests too)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases name the same parser twice
                yield from iter_parsers(child)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # `tunelab` alone is a request for help; `tunelab api` without a verb is a usage error.
        getattr(args, "help_parser", parser).print_help()
        return EXIT_OK if argv is None and len(sys.argv) == 1 else EXIT_USAGE
    try:
        return int(args.func(args) or EXIT_OK)
    except TunelabError as exc:
        print(f"Error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`tunelab api fine_tunes.list | head -3`): what it wanted was printed.
        # Point stdout at /dev/null so that Python's flush at exit does not complain a second time.
        _silence_stdout()
        return EXIT_OK
    except OSError as exc:
        if exc.errno not in _MACHINE_ERRNOS:
            raise
        # The machine refused a write (read-only disk, no space, no permission): a problem to fix
        # there, not a bug; the command wrote through temporary files, so nothing half-written stays.
        where = f" {exc.filename}" if exc.filename else ""
        fix = ("Free space on that disk (`tunelab models prune` deletes old checkpoints and models)"
               if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "Make it writable, or point TUNELAB_HOME (for the store) "
               "or the output option at a writable folder")
        print(f"Error: Cannot write{where}: {exc.strerror or exc}.\n{fix}, then run the command again.", file=sys.stderr)
        return EXIT_FAILED


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor behind stdout (tests capture it)
        pass
