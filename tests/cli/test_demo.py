"""`nbrisk demo build|case`: summary lines and one-line errors with exit status 2."""

from __future__ import annotations

import pytest

from nbrisk_core.cli import main


def test_build_prints_the_summary(tmp_path, capsys):
    assert main(["demo", "build", "--out", str(tmp_path / "c"), "--patients", "6", "--studies", "0"]) == 0
    text = capsys.readouterr().out
    for phrase in ("SYNTHETIC", "6 (4 HR / 2 NHR)", "median age", "median follow-up", "nse ",
                   "oracle AUC", "oracle C-index", "wall time", "size on disk"):
        assert phrase in text, phrase
    assert (tmp_path / "c" / "cohort.json").is_file()


def test_unknown_patient_exits_2_with_one_line(tiny_cohort, tmp_path, capsys):
    out, _ = tiny_cohort
    assert main(["demo", "case", "P9999", "--data", str(out), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "P9999" in err and "expected P0001..P0024" in err


def test_missing_cohort_exits_2(tmp_path, capsys):
    assert main(["demo", "case", "P0001", "--data", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "cohort.json" in capsys.readouterr().err


def test_foreign_output_directory_exits_2(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("keep")
    assert main(["demo", "build", "--out", str(tmp_path), "--patients", "3", "--studies", "0"]) == 2
    assert "not a demo cohort" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--patients", "0"], ["--patients", "abc"], ["--studies", "-1"]])
def test_bad_arguments_exit_2(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "build", "--out", str(tmp_path / "c"), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "error" in err
    assert not (tmp_path / "c").exists()


def test_more_studies_than_patients_exits_2(tmp_path, capsys):
    assert main(["demo", "build", "--out", str(tmp_path / "c"), "--patients", "3", "--studies", "4"]) == 2
    assert "n_studies" in capsys.readouterr().err
