"""The administration commands: ``proctor sitting create``, ``proctor import roster`` /
``bank`` (errors printed line by line, exit code 1, nothing imported), ``proctor paper
assemble``, ``proctor sitting list``."""

from __future__ import annotations

import json

import pytest

from proctor import cli
from tests.flowkit import demo_questions


@pytest.fixture
def env(tmp_path, monkeypatch, models_dir):
    monkeypatch.setenv("PROCTOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PROCTOR_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    monkeypatch.setenv("PROCTOR_MODELS_DIR", str(models_dir))
    return tmp_path


def test_commands(env, capsys, media_dir) -> None:
    assert (
        cli.main(
            [
                "sitting",
                "create",
                "--name",
                "Elec formal",
                "--kind",
                "formal",
                "--password",
                "elec-cli-1",
                "--starts",
                "2026-06-01T09:00+08:00",
                "--ends",
                "2026-06-01T11:00+08:00",
                "--rule",
                "entry_closes_minutes_after=20",
                "--rule",
                "require_phone=false",
            ]
        )
        == 0
    )
    assert "sitting 1 created" in capsys.readouterr().out
    assert (
        cli.main(
            [
                "sitting",
                "create",
                "--name",
                "x",
                "--kind",
                "formal",
                "--password",
                "elec-cli-2",
                "--starts",
                "2026-06-01T09:00+08:00",
                "--ends",
                "2026-06-01T11:00+08:00",
                "--rule",
                "late_after=3",
            ]
        )
        == 1
    )
    assert "bad_flow_rule" in capsys.readouterr().err

    roster = env / "roster.csv"
    roster.write_text(
        "姓名,身份证号,照片\n甲,110101199001010001,obama.jpg\n,110101199001010002,\n",
        encoding="utf-8",
    )
    photos = env / "photos"
    photos.mkdir()
    (photos / "obama.jpg").write_bytes((media_dir / "images" / "obama.jpg").read_bytes())
    assert (
        cli.main(["import", "roster", "--sitting", "1", str(roster), "--photos", str(photos)]) == 1
    )
    err = capsys.readouterr().err
    assert "nothing was imported" in err and "line 3 (name): the name is missing" in err
    roster.write_text(
        "姓名,身份证号,照片\n甲,110101199001010001,obama.jpg\n乙,110101199001010002,\n",
        encoding="utf-8",
    )
    assert (
        cli.main(["import", "roster", "--sitting", "1", str(roster), "--photos", str(photos)]) == 0
    )
    assert "2 added, 0 updated, 1 photos" in capsys.readouterr().out

    bank = env / "bank.json"
    bank.write_text(json.dumps(demo_questions("c")), encoding="utf-8")
    assert cli.main(["import", "bank", str(bank), "--bank", "cli-bank"]) == 0
    assert '"added": 27' in capsys.readouterr().out
    blueprint = env / "blueprint.json"
    blueprint.write_text(
        json.dumps(
            {"bank": "cli-bank", "sections": [{"type": "single", "count": 10, "points": 10}]}
        ),
        encoding="utf-8",
    )
    assert cli.main(["paper", "assemble", "--sitting", "1", str(blueprint)]) == 0
    assert "10 questions, 100 points" in capsys.readouterr().out
    assert cli.main(["sitting", "list"]) == 0
    out = capsys.readouterr().out
    assert "entry_closes_minutes_after=20.0" in out and "require_phone=False" in out
    assert cli.main(["results", "--sitting", "1"]) == 0
    assert capsys.readouterr().out.count("absent") == 2
