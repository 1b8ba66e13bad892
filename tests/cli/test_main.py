"""tunelab.cli.main: what every command shares at its end (exit codes, errors, pipes)."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


def test_a_reader_that_goes_away_is_no_error(tunelab_home, tmp_path):
    """`tunelab api fine_tunes.list | head -3`: the pipe closes before the JSON is written; the
    command ends quietly with 0, not with a BrokenPipeError traceback."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # as `head` does once it has its lines: every write now fails with EPIPE
    try:
        result = subprocess.run([sys.executable, "-m", "tunelab", "api", "files.list"], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=120,
                                env={**os.environ, "TUNELAB_HOME": str(tunelab_home)})
    finally:
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


@pytest.mark.parametrize("argv, says", [
    (["evalute", "-m", "ada"], "Did you mean `tunelab evaluate`?"),
    (["tool", "fine_tunes.prepare_data", "-f", "x"], "Did you mean `tunelab tools`?"),
    (["api", "fine_tune.create", "-t", "x"], "Did you mean `tunelab api fine_tunes.create`?"),
    (["api", "fine-tunes.create", "-t", "x"], "Did you mean `tunelab api fine_tunes.create`?"),
    (["fine_tunes.create", "-t", "x"], "Did you mean `tunelab api fine_tunes.create`?"),
    (["api", "fine_tunes.prepare_data", "-f", "x"], "Did you mean `tunelab tools fine_tunes.prepare_data`?"),
    (["openai", "api", "fine_tunes.list"], "Drop `openai`"),
    (["api", "completions.create", "-m", "ada"], "`tunelab complete -m MODEL"),
    (["api", "-t", "train.jsonl", "fine_tunes.create"], "Options come after the command: tunelab api VERB -t train.jsonl"),
    (["api", "fine_tunes.create", "-t", "x", "--epochs", "1"], "--epochs: did you mean --n_epochs?"),
    (["api", "fine_tunes.create", "-t", "x", "--n-epochs", "1"], "--n-epochs: did you mean --n_epochs?"),
])
def test_a_mistyped_command_or_option_names_what_was_meant(argv, says, capsys):
    """Usage errors said only 'invalid choice' (with the list) or, for an unknown option of a verb,
    `tunelab: error: unrecognized arguments` with the top-level usage; now the line under the error
    names the command or option meant, and an unknown option is reported by its verb."""
    with pytest.raises(SystemExit) as exit_:
        run_cli(*argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert says in err, err
    if "--epochs" in argv:
        assert "tunelab api fine_tunes.create: error: unrecognized arguments: --epochs 1" in err
