"""tunelab.cli.main: what every command shares at its end (exit codes, errors, pipes)."""

from __future__ import annotations


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
