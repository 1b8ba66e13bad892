"""What a newcomer reads first: `--help` of every command, and the exit codes scripts see.

Every option of every command has help text, starting with a capital letter; every option that
takes a value and is not required names its default (the default tunelab resolves, e.g. "auto,
resolved from the model and the data", not argparse's None). Exit codes follow one scheme:
0 ok, 1 job failed, 2 usage or input error, 3 not found, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import re

import pytest

from tests.conftest import REPO_ROOT, run_cli
from tunelab.cli.main import build_parser, iter_parsers
from tunelab.errors import (
    EXIT_CODES, ConflictError, DataFileError, InvalidInputError, JobFailedError, ModelUnavailableError, NotFoundError,
)


def all_actions():
    for parser in iter_parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:  # the commands listed under COMMAND / VERB
                    yield parser.prog, choice.dest, choice
            else:
                yield parser.prog, "/".join(action.option_strings) or action.dest, action


ACTIONS = list(all_actions())


def test_every_command_is_walked():
    progs = {prog for prog, _, _ in ACTIONS}
    for prog in ("tunelab api fine_tunes.create", "tunelab api fine_tunes.list", "tunelab evaluate", "tunelab compare",
                 "tunelab complete", "tunelab demo", "tunelab models list", "tunelab tools fine_tunes.prepare_data",
                 "tunelab serve", "tunelab datasets build"):
        assert prog in progs


def test_every_option_of_every_command_has_help():
    missing = [f"{prog} {name}" for prog, name, action in ACTIONS
               if not action.help or action.help == argparse.SUPPRESS or not action.help.strip()]
    assert missing == []


def test_help_texts_start_with_a_capital():
    lower = [f"{prog} {name}: {action.help[:40]!r}" for prog, name, action in ACTIONS
             if action.help and not re.match(r"[A-Z0-9`'\"(]", action.help)]
    assert lower == []


def test_every_value_option_names_its_default():
    silent = [f"{prog} {name}" for prog, name, action in ACTIONS
              if action.option_strings and action.nargs != 0 and not action.required
              and not isinstance(action, (argparse._HelpAction, argparse._VersionAction))
              and "default" not in (action.help or "").lower()]
    assert silent == []


def test_create_help_shows_each_openai_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("api", "fine_tunes.create", "--help")
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    helps = {name: action.help for prog, name, action in ACTIONS if prog == "tunelab api fine_tunes.create"}
    for option in ("--n_epochs", "--batch_size", "--learning_rate_multiplier", "--seed", "--prompt_loss_weight",
                   "--classification_n_classes", "--classification_positive_class", "--classification_betas"):
        assert "(default: " in helps[option], option
        assert " ".join(helps[option].split()[:4]) in text  # as --help prints it


def test_auto_defaults_come_from_the_hyperparameters():
    from dataclasses import fields

    from tunelab.cli.api import AUTO, hyperparameter_default
    from tunelab.training.config import Hyperparameters

    for field in fields(Hyperparameters):
        shown = hyperparameter_default(field.name)
        if field.default is None or field.default == "auto":
            assert shown == AUTO
        elif not isinstance(field.default, bool):
            assert shown == str(field.default)


# -- exit codes --------------------------------------------------------------------------------------


def test_the_scheme_is_documented_in_help_and_readme(capsys):
    assert EXIT_CODES == {0: EXIT_CODES[0], 1: EXIT_CODES[1], 2: EXIT_CODES[2], 3: EXIT_CODES[3], 130: EXIT_CODES[130]}
    with pytest.raises(SystemExit):
        run_cli("--help")
    text = capsys.readouterr().out
    assert "Exit codes:" in text
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for code in EXIT_CODES:
        assert re.search(rf"^\s*{code}\s", text, re.M), code
        assert re.search(rf"^\| `{code}` \|", readme, re.M), code


def test_error_classes_carry_the_scheme():
    assert InvalidInputError("x").exit_code == DataFileError("x").exit_code == ConflictError("x").exit_code == 2
    assert NotFoundError("x").exit_code == ModelUnavailableError("x").exit_code == 3
    assert JobFailedError("x", job_id="ftjob-x", status="failed").exit_code == 1


@pytest.fixture
def no_worker(monkeypatch):
    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: None)


@pytest.fixture
def job_id(tiny_models, no_worker, capsys):
    assert run_cli("api", "fine_tunes.create", "-t", tiny_models.train, "-m", tiny_models.encoder, "--no_follow") == 0
    return json.loads(capsys.readouterr().out)["id"]  # --no_follow prints the job, as the legacy CLI did


def test_exit_0_success(capsys):
    assert run_cli("models", "list") == 0


def test_exit_1_job_failed(job_id, capsys):
    from tunelab.store import Store
    from tunelab.store.records import FAILED

    store = Store()
    job = store.get_job(job_id)
    store.add_event(job.id, "Job failed: out of patience.", level="error")
    store.update_job(job.id, status=FAILED, error={"code": "error", "message": "out of patience"})
    assert run_cli("api", "fine_tunes.follow", "-i", job_id) == 1
    assert "Job failed. Reason: out of patience" in capsys.readouterr().out


def test_exit_2_usage_and_input_errors(job_id, tiny_models, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse: a required option is missing
        run_cli("api", "fine_tunes.get")
    assert exit_.value.code == 2
    assert run_cli("api") == 2  # a group without its verb: the group's help, as a usage error
    assert "fine_tunes.create" in capsys.readouterr().out
    assert run_cli("api", "fine_tunes.create", "-t", tiny_models.train, "--n_epochs", "two") == 2
    assert run_cli("api", "fine_tunes.cancel", "-i", job_id) == 0
    assert run_cli("api", "fine_tunes.cancel", "-i", job_id) == 2  # ConflictError: it has ended already


def test_exit_3_not_found_names_the_id_as_given(capsys):
    assert run_cli("api", "fine_tunes.get", "-i", "ft-nope") == 3
    err = capsys.readouterr().err
    assert "ft-nope" in err and "ftjob-nope" not in err
    assert run_cli("api", "fine_tunes.get", "-i", "ft-doesnotexist0000") == 3
    assert "No such fine-tuning job: ft-doesnotexist0000." in capsys.readouterr().err


MISSING = "MISSING"  # replaced by a path that does not exist
OK = "OK"  # replaced by a usable prompt/completion file


@pytest.mark.parametrize("argv", [
    ["evaluate", "-m", "ada", "-f", MISSING],
    ["datasets", "build", MISSING, "--preset", "amazon-stars", "--out", "out"],
    ["datasets", "build", "clothing-reviews", "--merge-labels", MISSING, "--out", "out"],
    ["tools", "fine_tunes.prepare_data", "-f", MISSING, "-q"],
    ["api", "fine_tunes.create", "-t", MISSING, "-m", "ada"],
    ["api", "fine_tunes.create", "-t", OK, "-v", MISSING, "-m", "ada"],
    ["api", "files.create", "-f", MISSING],
    ["complete", "-m", "ada", "--prompt-file", MISSING],
    ["labels", "inspect", "-f", MISSING],
    ["labels", "inspect", "-f", OK, "-t", MISSING],
    ["labels", "merge", MISSING, "--merge", "1=2", "--out", "out"],
    ["labels", "merge", "-f", MISSING, "--merge", "1=2", "--out", "out"],
    ["labels", "merge", "-f", OK, "--merge-labels", MISSING, "--out", "out"],
    ["labels", "issues", "-f", MISSING],
    ["feedback", "import", MISSING],
], ids=lambda argv: " ".join(argv))
def test_exit_3_for_a_missing_path_names_it(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "no-such-dir" / "nope.jsonl"
    ok = tmp_path / "ok.jsonl"
    ok.write_text("".join(json.dumps({"prompt": f"p{i} ->", "completion": f" {i % 2}"}) + "\n" for i in range(6)))
    argv = [str(missing) if a == MISSING else str(ok) if a == OK else a for a in argv]
    assert run_cli(*argv) == 3
    out, err = capsys.readouterr()
    assert str(missing) in err and "Traceback" not in out + err
    assert not (tmp_path / "out").exists()


def test_exit_130_interrupted(job_id, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("tunelab.cli.api.watch", interrupted)
    assert run_cli("api", "fine_tunes.follow", "-i", job_id) == 130
    assert f"tunelab api fine_tunes.follow -i {job_id}" in capsys.readouterr().out
    monkeypatch.setattr("tunelab.cli.api.cmd_list", interrupted)  # anywhere else: main() says so
    monkeypatch.setattr("tunelab.cli.api.Store", interrupted)
    assert run_cli("api", "fine_tunes.get", "-i", job_id) == 130


@pytest.mark.parametrize("setup, says", [
    ("corrupt", "tunelab.db cannot be used: file is not a database"),
    ("folder", "tunelab.db cannot be used"),
    ("home_is_file", "it is a file, not a folder"),
])
def test_exit_1_for_an_unusable_store_names_it(setup, says, tunelab_home, capsys):
    """A store database that is not one, or a TUNELAB_HOME that cannot be a folder: one paragraph, exit 1."""
    if setup == "home_is_file":
        tunelab_home.write_text("")
    else:
        tunelab_home.mkdir()
        db = tunelab_home / "tunelab.db"
        db.mkdir() if setup == "folder" else db.write_bytes(b"not sqlite " * 500)
    assert run_cli("models", "list") == 1
    out, err = capsys.readouterr()
    assert says in err and str(tunelab_home) in err and "Traceback" not in out + err


@pytest.mark.parametrize("url, says", [
    ("postgre://tunelab@db-host/tunelab", "names a database tunelab cannot use: 'postgre'"),
    ("mysql://tunelab:secret@db-host/tunelab", "names a database tunelab cannot use: 'mysql'"),
    ("db-host/tunelab", "'db-host/tunelab' is not a database URL"),
    ("postgresql://tunelab:secret@db-host:port/tunelab", "is not a database URL"),
    ("postgresql://tunelab@db-host/tunelab", "its driver psycopg (3) is not installed"),
])
def test_exit_2_for_a_database_url_tunelab_cannot_use(url, says, tunelab_home, monkeypatch, capsys):
    """A mistyped TUNELAB_DATABASE_URL or a missing PostgreSQL driver: one paragraph naming the fix, exit 2,
    never SQLAlchemy's traceback nor the password."""
    import sys

    monkeypatch.setenv("TUNELAB_DATABASE_URL", url)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    assert run_cli("api", "fine_tunes.list") == 2
    out, err = capsys.readouterr()
    assert says in err and ("TUNELAB_DATABASE_URL" in err or "tunelab[postgres]" in err), err
    assert "Traceback" not in out + err and "secret" not in out + err


def test_exit_1_when_the_machine_refuses_a_write(monkeypatch, tmp_path, capsys):
    """A read-only disk (or a full one) under a command is the machine's problem: said in one paragraph."""
    import errno

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "files"))

    monkeypatch.setattr("tunelab.cli.models.cmd_list", read_only)
    assert run_cli("models", "list") == 1
    err = capsys.readouterr().err
    assert f"Cannot write {tmp_path / 'files'}: Read-only file system." in err and "writable" in err


def test_a_store_on_a_full_disk_says_so_not_to_move_the_database(tunelab_home, monkeypatch, capsys):
    """SQLite on a full disk says "disk I/O error": the fix is free space, not a restored database."""
    import shutil
    from collections import namedtuple

    tunelab_home.mkdir()
    (tunelab_home / "tunelab.db").write_bytes(b"unreadable " * 500)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: namedtuple("usage", "total used free")(10, 10, 0))
    assert run_cli("models", "list") == 1
    err = capsys.readouterr().err
    assert f"the disk holding {tunelab_home} is full" in err and "move it" not in err
