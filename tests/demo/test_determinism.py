"""Same seed, same bytes: every file of two builds is identical; another seed differs."""

from __future__ import annotations

import hashlib
import json

from nbrisk_core.demo import build_cohort, write_study


def _hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_the_same_bytes(tmp_path):
    summary = build_cohort(tmp_path / "a", n_patients=4, seed=77, n_studies=1)
    build_cohort(tmp_path / "b", n_patients=4, seed=77, n_studies=0)
    # the on-demand study (regenerated from cohort.json) is the pre-built one, byte for byte
    write_study(tmp_path / "b", summary["example_patients"][0], tmp_path / "b" / "studies")
    first, second = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert len(first) == 1 + 3 + 4 * 4 + 3 * 48   # cohort.json, 3 tables, slices, one study
    meta_a = json.loads((tmp_path / "a" / "cohort.json").read_text())
    meta_b = json.loads((tmp_path / "b" / "cohort.json").read_text())
    assert meta_b.pop("example_patients") == []
    assert meta_a.pop("example_patients") == summary["example_patients"]
    assert meta_a == meta_b
    del first["cohort.json"], second["cohort.json"]
    assert first == second
    build_cohort(tmp_path / "c", n_patients=4, seed=77, n_studies=1)
    assert _hashes(tmp_path / "c") == _hashes(tmp_path / "a")


def test_other_seed_differs_and_rebuild_replaces(tmp_path):
    build_cohort(tmp_path / "a", n_patients=3, seed=77, n_studies=0)
    before = _hashes(tmp_path / "a")
    build_cohort(tmp_path / "a", n_patients=2, seed=78, n_studies=0)
    after = _hashes(tmp_path / "a")
    assert before["clinical.csv"] != after["clinical.csv"]
    assert "slices/P0003/hu.npz" not in after   # the old cohort is gone, not merged
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no staging left behind
