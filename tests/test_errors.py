from tunelab.errors import InvalidInputError


def test_render_puts_indented_problems_under_the_bullet_above():
    err = InvalidInputError("Cannot create the fine-tuning job:", problems=[
        "training file: t.jsonl is not a valid prompt/completion file:",
        "    t.jsonl:2: field `completion` is missing",
        "    Run `tunelab tools fine_tunes.prepare_data -f t.jsonl` to fix it.",
        "--classification_n_classes 6 does not match the training data",
    ])
    assert err.render().splitlines() == [
        "Cannot create the fine-tuning job:",
        "  - training file: t.jsonl is not a valid prompt/completion file:",
        "      t.jsonl:2: field `completion` is missing",
        "      Run `tunelab tools fine_tunes.prepare_data -f t.jsonl` to fix it.",
        "  - --classification_n_classes 6 does not match the training data",
    ]
