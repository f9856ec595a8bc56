"""Every command and the Python snippet of the README's Quick tour run as written.

The run directory the README names (`runs/mfcvae-shapes_procedural-<time>`) is replaced by the
one the tour's own `mfcf train` created; everything runs in a fresh folder holding `configs/`."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PLACEHOLDER = re.compile(r"runs/mfcvae-shapes_procedural-\d{8}-\d{6}")


def quick_tour() -> tuple[list[str], str]:
    """The tour's shell commands (comments dropped) and its Python snippet."""
    text = ROOT.joinpath("README.md").read_text()
    section = text[text.index("## Quick tour"):text.index("\n## ", text.index("## Quick tour") + 1)]
    bash = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in bash.splitlines() if line.split("#")[0].strip()]
    return commands, python


@pytest.mark.slow
def test_every_quick_tour_command_and_snippet_runs_as_written(tmp_path):
    commands, snippet = quick_tour()
    assert [c.split()[:2] for c in commands] == [["mfcf", "plugins"], ["mfcf", "config"], ["mfcf", "train"],
                                                  ["mfcf", "train"], ["mfcf", "evaluate"]]
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    run_dir = None
    for command in commands:
        args = shlex.split(PLACEHOLDER.sub(run_dir or "runs/none", command))
        done = subprocess.run([sys.executable, "-m", "mfcf.cli", *args[1:]], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        created = re.search(r"run directory: (\S+)", done.stdout)
        run_dir = run_dir or (created.group(1) if created else None)
    assert run_dir and (tmp_path / run_dir / "eval-test.json").is_file()
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "hungarian_acc" in done.stdout
