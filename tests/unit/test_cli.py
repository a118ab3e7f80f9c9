"""The ``reusespec`` command: subcommands, their help, and the asset installer behind ``install``."""

from __future__ import annotations

from pathlib import Path

import pytest

from reusespec.cli import main
from reusespec.errors import ReuseSpecError


@pytest.mark.parametrize("command", ["calibrate", "render"])
def test_each_subcommand_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: reusespec {command}" in capsys.readouterr().out


def test_install_and_assets_go_to_the_asset_installer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assets", "list"]) == 0
    with pytest.raises(SystemExit) as exited:
        main(["install", "no-such-group"])
    assert exited.value.code == 2
    assert "unknown asset group 'no-such-group'" in capsys.readouterr().err


def test_render_refuses_a_file_that_is_no_report(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:

    path = Path(str(tmp_path)) / "x.json"
    path.write_text('{"schema": "something-else"}')
    with pytest.raises(ReuseSpecError, match="not a reusespec report"):
        main(["render", str(path)])
