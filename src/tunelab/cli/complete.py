"""`tunelab complete`: one completion with its first-token probabilities, printed like the book's
Listing 4.3 (`max_tokens=1, temperature=0, logprobs=5`).

For a classification model each label counts as one token (label-level semantics, see
tunelab.inference.predictor), so the list is the label distribution — the same numbers
`tunelab evaluate` scores with. For a free-form model it is the raw first-token top-k.
Leading spaces are shown as ␣, since " 4" and "4" are different tokens.
"""

from __future__ import annotations

import argparse
import sys

from tunelab.cli.common import add_command, print_json
from tunelab.errors import InvalidInputError, NotFoundError
from tunelab.inference.completion import complete_prompt, format_completion


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 2:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2, got {value}")
    return value


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "complete", cmd_complete,
        help="Complete one prompt and show the first token's probabilities (the book's Listing 4.3).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Build the prompt exactly as in training (e.g. ending with the separator \\n\\n###\\n\\n).\n"
               "Example (bash): tunelab complete -m MODEL --prompt $'Great dress\\n\\n###\\n\\n'",
    )
    parser.add_argument("-m", "--model", required=True,
                        help="Fine-tuned model id, a tunelab model folder, or a base model name.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--prompt", help="The prompt text; - reads it from standard input (default: standard input when piped).")
    source.add_argument("--prompt-file", "--prompt_file", dest="prompt_file", metavar="PATH",
                        help="Read the prompt from a file; - reads standard input (default: none).")
    parser.add_argument("--max_tokens", "--max-tokens", dest="max_tokens", type=_int_at_least(1), default=1,
                        help="Tokens to generate (default: 1; a classification model always answers one label).")
    parser.add_argument("--logprobs", type=_int_at_least(0), default=5,
                        help="How many of the most probable first tokens (labels) to show (default: 5).")
    parser.add_argument("--temperature", type=_temperature, default=0.0,
                        help="0 (default) picks the most probable; higher values sample.")
    parser.add_argument("--labels", action="store_true",
                        help="Show the whole distribution over all of a classification model's labels.")
    parser.add_argument("--seed", type=int, default=None, help="Seed for sampling, with temperature > 0 (default: none, a new draw each time).")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON.")


def read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None and args.prompt != "-":
        text = args.prompt
    elif args.prompt == "-" or args.prompt_file == "-":
        text = sys.stdin.read()
    elif args.prompt_file is not None:
        try:
            with open(args.prompt_file, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            raise NotFoundError(f"The prompt file {args.prompt_file} does not exist.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"Cannot read the prompt file {args.prompt_file}: {exc}") from None
    elif not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        raise InvalidInputError("No prompt given.", hint="Pass --prompt TEXT, --prompt-file PATH, or pipe it in.")
    if not text:
        raise InvalidInputError("The prompt is empty.")
    return text


def separator_note(model: str, prompt: str) -> str | None:
    """A note when the prompt lacks the separator the model's training prompts end with (the model
    learnt to answer after it), with how to type it; None when it is there or unknown."""
    from tunelab.data.prepare import show
    from tunelab.jobs.files import missing_separator
    from tunelab.store import Store

    separator = missing_separator(Store(), model, prompt)
    if not separator:
        return None
    shown = show(separator)
    if prompt.rstrip().endswith(shown.strip()):
        how = (f"it ends with the characters `{shown}` instead: in bash, write the prompt as "
               f"$'...{shown}' so that \\n becomes a line break.")
    else:
        how = f"add `{shown}` to its end (in bash: --prompt $'...{shown}'), as the training prompts had it."
    return (f"Note: {model} was trained on prompts that end with `{shown}`, and this prompt does not, so its "
            f"answer may be off; {how}")


def cmd_complete(args: argparse.Namespace) -> int:
    from tunelab.inference.predictor import load_predictor

    prompt = read_prompt(args)
    note = separator_note(args.model, prompt)
    if note:
        print(note, file=sys.stderr)
    predictor = load_predictor(args.model, folders=True)
    result = complete_prompt(predictor, prompt, max_tokens=args.max_tokens, logprobs=args.logprobs,
                             temperature=args.temperature, all_labels=args.labels, seed=args.seed)
    if args.json:
        print_json({**result, "probabilities": dict(result["probabilities"])})
    else:
        print(format_completion(result))
    return 0
