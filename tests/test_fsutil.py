"""fsutil.output_dir: the --out folder of evaluate, compare, labels inspect and feedback export."""

from __future__ import annotations

import pytest

from tunelab.errors import InvalidInputError
from tunelab.fsutil import atomic_open, output_dir


def test_output_dir_creates_a_folder_and_names_a_file_in_the_way(tmp_path):
    assert output_dir(tmp_path / "a" / "b").is_dir()
    assert not output_dir(tmp_path / "later", create=False).exists()
    (tmp_path / "report").write_text("x")
    with pytest.raises(InvalidInputError, match="--out .*report is a file, not a directory"):
        output_dir(tmp_path / "report")
    with pytest.raises(InvalidInputError, match="is under .*report, a file"):
        output_dir(tmp_path / "report" / "sub", create=False)


def test_atomic_open_names_a_directory_or_a_file_in_the_way(tmp_path):
    from tunelab.fsutil import atomic_open

    (tmp_path / "plots").mkdir()
    with pytest.raises(InvalidInputError, match="plots is a directory; give the path of a file"):
        with atomic_open(tmp_path / "plots", "wb"):
            pass
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InvalidInputError, match="afile is a file, not a directory"):
        with atomic_open(tmp_path / "afile" / "x.png", "wb"):
            pass
    with atomic_open(tmp_path / "new" / "x.txt") as fh:
        fh.write("ok")
    assert (tmp_path / "new" / "x.txt").read_text() == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "new", "plots"]  # no temporary file left


def test_atomic_open_names_the_file_a_full_disk_refused(tmp_path):
    """A write's ENOSPC names no file; the CLI's one-line error must say which (QA)."""
    import errno

    target = tmp_path / "predictions.jsonl"
    with pytest.raises(OSError) as info, atomic_open(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_written_files_and_folders_get_the_usual_permissions(tmp_path):
    """QA: every file tunelab wrote (datasets build's train.jsonl, results --plot curves.png,
    compare.csv, the store's uploads) was -rw------- whatever the umask, since mkstemp makes its
    file private; and atomic_dir's folders drwx------. They now get what open()/mkdir() would give,
    and a file written again keeps its mode."""
    import os
    import stat

    from tunelab.fsutil import _UMASK, atomic_dir, write_json

    write_json(tmp_path / "new.json", {})
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o666 & ~_UMASK
    kept = tmp_path / "kept.json"
    kept.write_text("{}")
    os.chmod(kept, 0o640)
    write_json(kept, {"a": 1})
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    with atomic_dir(tmp_path / "model") as folder:
        (folder / "x").write_text("x")
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o777 & ~_UMASK


def test_umask_is_read_as_the_process_has_it():
    import os

    from tunelab.fsutil import _read_umask

    old = os.umask(0o027)
    try:
        assert _read_umask() == 0o027
    finally:
        os.umask(old)
