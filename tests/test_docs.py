"""Docs stay true: every CLI command and every setting is documented in the README."""
from __future__ import annotations

import typer

from digest.cli.main import app
from digest.store.settings import Settings
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def _commands(group, prefix: str):
    for name, cmd in group.commands.items():
        path = f"{prefix} {name}"
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, path)
        else:
            yield path, cmd


def test_every_cli_command_is_in_readme_and_has_help_with_an_example():
    root = typer.main.get_command(app)
    commands = list(_commands(root, "digest"))
    assert len(commands) >= 15
    for path, cmd in commands:
        assert f"`{path}" in README, f"{path} is not documented in README.md"
        assert cmd.help and "xample" in cmd.help, f"{path} --help has no example"


def test_every_setting_is_in_readme():
    for name, field in Settings.model_fields.items():
        env = field.alias or f"DIGEST_{name.upper()}"
        assert f"`{env}`" in README, f"{env} is not documented in README.md"
