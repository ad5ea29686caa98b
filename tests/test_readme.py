"""The README's set-up commands are what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    return [block.strip() for block in blocks]


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    # The first runs the main job with the default parser on the real demo clip in examples/.
    assert commands[0].endswith("humanparse video examples/pedestrians.mp4 --out runs/demo")
    assert (ROOT / "examples" / "pedestrians.mp4").is_file()
    assert "[test]" in commands[1] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    install, test = (part.strip() for part in readme_commands()[1].split("&&"))
    assert install in ci_lines and test in ci_lines
    assert ci_lines.index(install) < ci_lines.index(test)


def test_the_readmes_python_block_runs(monkeypatch, capsys) -> None:
    """The "From Python" block, as written, from the repository's root."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"From Python[^\n]*:\n\n```python\n(.*?)\n```", text, flags=re.S).group(1)
    monkeypatch.chdir(ROOT)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert len(scope["result"].ids) == 1 and scope["frame"].index == 9  # the clip's first second, 10 frames/s
    assert "head" in capsys.readouterr().out
