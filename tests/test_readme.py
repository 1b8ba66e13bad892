"""The README's commands, run as a reader would run them (quick, small-data variant).

Every ```bash block between `<!-- readme-test:walkthrough:start -->` and
`<!-- readme-test:walkthrough:end -->` runs in order in one bash session, in a fresh folder with the
installed `tunelab` on PATH (the `demo` section's block likewise; the `python-api` section is
tests/jobs/test_python_api.py's). If a command in the README stops working, or the README drifts
from the CLI, this test fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
pytestmark = pytest.mark.integration


def readme_blocks(section: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- readme-test:{section}:start -->(.*?)<!-- readme-test:{section}:end -->", text, re.S)
    assert match, f"README has no readme-test:{section} section"
    return re.findall(r"```bash\n(.*?)```", match.group(1), re.S)


def run_bash(script: str, cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", PYTHONUNBUFFERED="1")
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_setup_commands_are_the_makefile_targets():
    text = README.read_text(encoding="utf-8")
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in text
        assert re.search(rf"^{target}:", makefile, re.M)
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
    # the fast tier is everything but the slow marker, with the same set-up as `make test`
    fast = re.search(r"^test-fast: setup-test\n\t(.+)$", makefile, re.M)
    assert fast and '-m "not slow"' in fast.group(1) and "pytest" in fast.group(1), "make test-fast"


@pytest.mark.slow  # runs the README: trains, evaluates, serves
@pytest.mark.timeout(960)  # the bash session's own 900 s limit reports first, with the output so far
def test_walkthrough_commands_run(tmp_path):
    blocks = readme_blocks("walkthrough")
    assert len(blocks) >= 6
    result = run_bash("\n".join(blocks), tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "Job complete! Status: succeeded" in out
    assert "Predicted Star:" in out and "Probabilities:" in out
    assert "good vs bad" in out.lower() or "good-vs-bad" in out.lower()


@pytest.mark.slow  # runs `tunelab demo` as the README shows it
@pytest.mark.timeout(960)
def test_quick_demo_runs(tmp_path):
    (block,) = readme_blocks("demo")
    result = run_bash(block, tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert out.lstrip().startswith("Device: ")  # where it trains, before the first wait
    assert "The demo trains three models" not in out  # no measured time claimed for other sizes
    for step in range(1, 8):
        assert f"== {step}." in out
    assert "Report folder:" in out
    assert "| 1 + 1 epochs, shuffled" in out  # the continued column says what it is (and any kept epoch)
    assert "tunelab api fine_tunes.checkpoints -i ftjob-" in out
    report = Path(out.rsplit("Report folder:", 1)[1].split()[0])
    for name in ("compare/compare.md", "compare/compare.csv", "compare/compare.png", "listing_4_3.txt",
                 "openai_client_snippet.py", "summary.json"):
        assert (report / name).exists(), name
