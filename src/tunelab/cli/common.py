"""Small helpers shared by CLI modules."""

from __future__ import annotations

import argparse
import json
import sys


def add_command(sub, name: str, func, help: str, **kwargs) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help, **kwargs)
    parser.set_defaults(func=func)
    return parser


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def confirm(question: str, assume_yes: bool) -> bool:
    """Ask y/n on a terminal; with -q, or with no terminal to ask on, accept."""
    if assume_yes or not sys.stdin.isatty():
        return True
    try:
        answer = input(f"{question} [Y/n]: ").strip().lower()
    except EOFError:
        return True
    return answer in ("", "y", "yes")
