"""The package installs from pyproject.toml and environment.yml lists the same dependencies (extras included)."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for reqs in project["optional-dependencies"].values() for r in reqs]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"] + extras}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml must have one pip: list"
    listed = {_name(r): r.replace(" ", "") for r in pip_lists[0] if not r.startswith("-e")}
    assert listed == wanted, "environment.yml and pyproject.toml disagree"
    assert "-e ." in pip_lists[0], "environment.yml must install the toolkit itself"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```(?:bash)?\n(.*?)```", readme, flags=re.S)
    assert len(commands) >= 2
    test_command = commands[1].strip().splitlines()[-1]
    ci = (ROOT / ".ci" / "run").read_text()
    install, _, test = test_command.partition(" && ")
    assert install.strip() in ci and test.strip() == ci.strip().splitlines()[-1]
