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
    parser = Parser(
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
    Parser.root = parser
    return parser


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors also say what was probably meant: a near-miss command
    or option ("Did you mean ...?"), the group a verb belongs to, or options given before the verb."""

    argv: list[str] = []  # the command line being parsed (main sets it), to see what came before a word
    root: argparse.ArgumentParser | None = None  # the `tunelab` parser (build_parser sets it)

    def error(self, message: str):
        hint = _hint(self, message)
        super().error(f"{message}\n{hint}" if hint else message)


LEGACY_VERBS = {
    "completions.create": "tunelab complete -m MODEL --prompt TEXT --max_tokens 1 --logprobs 5",
    "chat_completions.create": "tunelab serve, then the openai client's chat.completions.create",
    "models.list": "tunelab models list",
    "models.get": "tunelab models get MODEL",
    "models.retrieve": "tunelab models get MODEL",
}
"""Verbs of the legacy `openai api` that tunelab spells another way."""


def _hint(parser: argparse.ArgumentParser, message: str) -> str | None:
    """A sentence for argparse's `message` when something close was meant, else None."""
    import difflib
    import re

    if message.startswith("unrecognized arguments: "):
        hints = []
        options = [s for a in parser._actions for s in a.option_strings]
        for word in message.removeprefix("unrecognized arguments: ").split():
            name = word.split("=", 1)[0]
            if not name.startswith("--") and not (name.startswith("-") and len(name) == 2):
                continue
            same = [o for o in options if o.replace("-", "_") == name.replace("-", "_")]
            close = same or difflib.get_close_matches(name, options, n=1, cutoff=0.6)
            if close:
                hints.append(f"{name}: did you mean {close[0]}?")
        return "\n".join(hints) or None
    found = re.search(r"invalid choice: '?(.*?)'? \(choose from", message)
    if not found:
        return None
    typed = found.group(1)
    argv = Parser.argv
    at = argv.index(typed) if typed in argv else -1
    if at > 0 and argv[at - 1].startswith("-"):
        return (f"Options come after the command: {parser.prog} {'VERB' if parser.prog != 'tunelab' else 'COMMAND'} "
                f"{' '.join(argv[at - 1:at + 1])} … (see `{parser.prog} --help`).")
    if typed == "openai":
        return "Drop `openai`: tunelab takes the legacy commands as they were, e.g. `tunelab api fine_tunes.list`."
    if typed in LEGACY_VERBS:
        return f"tunelab does that with `{LEGACY_VERBS[typed]}`."
    choices = next((list(a.choices) for a in parser._actions if isinstance(a, argparse._SubParsersAction)), [])
    normalized = typed.lower().replace("-", "_").replace("fine_tune.", "fine_tunes.").replace("finetunes", "fine_tunes")
    if normalized in choices:
        return f"Did you mean `{parser.prog} {normalized}`?"
    elsewhere = [p.prog for p in iter_parsers(Parser.root or parser) if p.prog.endswith(f" {normalized}")]
    if elsewhere:  # a verb of another group: `tunelab fine_tunes.create`, `tunelab api fine_tunes.prepare_data`
        return f"Did you mean `{elsewhere[0]}`?"
    close = difflib.get_close_matches(normalized, choices, n=1, cutoff=0.6)
    return f"Did you mean `{parser.prog} {close[0]}`?" if close else None


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
    Parser.argv = list(sys.argv[1:] if argv is None else argv)
    args, extras = parser.parse_known_args(argv)
    if extras:  # said by the command's own parser, whose options the hint can name
        getattr(args, "help_parser", parser).error(f"unrecognized arguments: {' '.join(extras)}")
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
