"""INRG (Cohn 2009 / PDQ Table 4) and COG v2 (Irwin 2021 / PDQ Table 3) risk-group tables.

The per-row examples and the two oracles below are written from the published tables' text, not
from ``nbrisk_core.clinical.risk_groups``, so that a wrong cell in the module's tables fails here.
"""

from __future__ import annotations

import itertools
import random

import pytest

from nbrisk_core.clinical.risk_groups import (
    COG_TABLE,
    DAYS_PER_MONTH,
    DOMAINS,
    GAPS,
    INDETERMINATE,
    INRG_TABLE,
    RISK_INPUT_NAMES,
    age_band,
    classify,
    classify_patient,
    parse_inputs,
)

#: a representative age (months) of each band
AGES = {"<12 mo": 6.0, "12 to <18 mo": 15.0, ">=18 mo": 30.0}

NB = {"histologic_category": "neuroblastoma"}


def patient(**values):
    return dict(values)


# --- one hand-written patient per INRG row: (row_id, inputs, group, risk) ---------------------------
INRG_EXAMPLES = [
    ("A", patient(inrg_stage="L2", age_months=40, histologic_category="GNB intermixed"), "A", "very low"),
    ("B", patient(inrg_stage="L1", age_months=40, **NB, mycn_amplified="0"), "B", "very low"),
    ("K", patient(inrg_stage="L1", age_months=5, histologic_category="GNB nodular", mycn_amplified="1"),
     "K", "high"),
    ("D", patient(inrg_stage="L2", age_months=10, **NB, mycn_amplified="0", aberration_11q="0"), "D", "low"),
    ("G", patient(inrg_stage="L2", age_months=16, **NB, mycn_amplified="0", aberration_11q="1"),
     "G", "intermediate"),
    ("E", patient(inrg_stage="L2", age_months=20, histologic_category="GNB nodular",
                  differentiation_grade="differentiating", mycn_amplified="0", aberration_11q="0"),
     "E", "low"),
    ("H-differentiating", patient(inrg_stage="L2", age_months=20, **NB,
                                  differentiation_grade="differentiating", mycn_amplified="0",
                                  aberration_11q="1"), "H", "intermediate"),
    ("H-poorly-or-undifferentiated", patient(inrg_stage="L2", age_months=60, **NB,
                                             differentiation_grade="undifferentiated", mycn_amplified="0"),
     "H", "intermediate"),
    ("N", patient(inrg_stage="L2", age_months=24, **NB, mycn_amplified="1"), "N", "high"),
    ("F", patient(inrg_stage="M", age_months=14, mycn_amplified="0", ploidy="hyperdiploid"), "F", "low"),
    ("I", patient(inrg_stage="M", age_months=11, mycn_amplified="0", ploidy="diploid"), "I", "intermediate"),
    ("J", patient(inrg_stage="M", age_months=13, mycn_amplified="0", ploidy="diploid"), "J", "intermediate"),
    ("O", patient(inrg_stage="M", age_months=3, mycn_amplified="1"), "O", "high"),
    ("P", patient(inrg_stage="M", age_months=19), "P", "high"),
    ("C", patient(inrg_stage="MS", age_months=2, mycn_amplified="0", aberration_11q="0"), "C", "very low"),
    ("Q", patient(inrg_stage="MS", age_months=2, mycn_amplified="0", aberration_11q="1"), "Q", "high"),
    ("R", patient(inrg_stage="MS", age_months=17, mycn_amplified="1"), "R", "high"),
]

FAV = {"histology": "favourable", "segmental_aberrations": "0", "ploidy": "hyperdiploid"}

COG_EXAMPLES = [
    ("L1-nonamp", patient(inrg_stage="L1", age_months=50, mycn_amplified="0", histology="unfavourable"),
     "low"),
    ("L1-amp-resected", patient(inrg_stage="L1", age_months=50, mycn_amplified="1", resection="complete"),
     "low"),
    ("L1-amp-residual", patient(inrg_stage="L1", age_months=5, mycn_amplified="1", resection="incomplete"),
     "high"),
    ("L2-amp", patient(inrg_stage="L2", age_months=5, mycn_amplified="1"), "high"),
    ("L2-UH-18mo", patient(inrg_stage="L2", age_months=19, mycn_amplified="0", histology="unfavourable"),
     "high"),
    ("L2-FH-18mo", patient(inrg_stage="L2", age_months=19, mycn_amplified="0", histology="favourable"),
     "intermediate"),
    ("L2-under-18mo", patient(inrg_stage="L2", age_months=17, mycn_amplified="0", histology="unfavourable"),
     "intermediate"),
    ("M-18mo", patient(inrg_stage="M", age_months=18), "high"),
    ("M-amp", patient(inrg_stage="M", age_months=8, mycn_amplified="1"), "high"),
    ("M-under-12mo", patient(inrg_stage="M", age_months=8, mycn_amplified="0", histology="unfavourable",
                             segmental_aberrations="1", ploidy="diploid"), "intermediate"),
    ("M-12-18-UH", patient(inrg_stage="M", age_months=12.5, mycn_amplified="0", histology="unfavourable"),
     "high"),
    ("M-12-18-SCA", patient(inrg_stage="M", age_months=12.5, mycn_amplified="0", histology="favourable",
                            segmental_aberrations="1"), "high"),
    ("M-12-18-diploid", patient(inrg_stage="M", age_months=12.5, mycn_amplified="0", histology="favourable",
                                segmental_aberrations="0", ploidy="diploid"), "high"),
    ("M-12-18-favourable", patient(inrg_stage="M", age_months=12.5, mycn_amplified="0", **FAV),
     "intermediate"),
    ("MS-amp", patient(inrg_stage="MS", age_months=3, mycn_amplified="1"), "high"),
    ("MS-12-18-UH", patient(inrg_stage="MS", age_months=14, mycn_amplified="0", histology="unfavourable"),
     "high"),
    ("MS-12-18-SCA", patient(inrg_stage="MS", age_months=14, mycn_amplified="0", histology="favourable",
                             segmental_aberrations="1"), "high"),
    ("MS-12-18-diploid", patient(inrg_stage="MS", age_months=14, mycn_amplified="0", histology="favourable",
                                 segmental_aberrations="0", ploidy="diploid"), "high"),
    ("MS-12-18-favourable", patient(inrg_stage="MS", age_months=14, mycn_amplified="0", **FAV),
     "intermediate"),
    ("MS-under-12-favourable", patient(inrg_stage="MS", age_months=4, mycn_amplified="0", symptomatic="0",
                                       **FAV), "low"),
    ("MS-under-12-symptomatic", patient(inrg_stage="MS", age_months=4, mycn_amplified="0", symptomatic="1",
                                        **FAV), "intermediate"),
    ("MS-under-12-UH", patient(inrg_stage="MS", age_months=4, mycn_amplified="0", symptomatic="0",
                               histology="unfavourable"), "intermediate"),
    ("MS-under-12-SCA", patient(inrg_stage="MS", age_months=4, mycn_amplified="0", symptomatic="0",
                                histology="favourable", segmental_aberrations="1"), "intermediate"),
    ("MS-under-12-diploid", patient(inrg_stage="MS", age_months=4, mycn_amplified="0", symptomatic="0",
                                    histology="favourable", segmental_aberrations="0", ploidy="diploid"),
     "intermediate"),
]


def test_every_row_has_an_example():
    assert [r for r, *_ in INRG_EXAMPLES] == [row.row_id for row in INRG_TABLE]
    assert [r for r, *_ in COG_EXAMPLES] == [row.row_id for row in COG_TABLE]


@pytest.mark.parametrize("row_id,inputs,group,risk", INRG_EXAMPLES, ids=[e[0] for e in INRG_EXAMPLES])
def test_inrg_row(row_id, inputs, group, risk):
    result = classify("INRG", inputs)
    assert (result.group, result.risk) == (group, risk)
    row = next(r for r in INRG_TABLE if r.row_id == row_id)
    assert (row.group, row.risk) == (group, risk)


@pytest.mark.parametrize("row_id,inputs,risk", COG_EXAMPLES, ids=[e[0] for e in COG_EXAMPLES])
def test_cog_row(row_id, inputs, risk):
    result = classify("COG", inputs)
    assert result.risk == risk
    row = next(r for r in COG_TABLE if r.row_id == row_id)
    assert row.risk == risk and result.group == row.group


# --- independent oracles, written from the published text -----------------------------------------
def inrg_oracle(v):
    """Cohn 2009 Table 3 / PDQ Table 4, read top to bottom."""
    stage, age, hist = v["inrg_stage"], v["age_band"], v["histologic_category"]
    under18 = age != ">=18 mo"
    amp = v["mycn_amplified"] == "1"
    q11 = v["aberration_11q"] == "1"
    if stage in ("L1", "L2") and hist in ("GN maturing", "GNB intermixed"):
        return "A", "very low"
    if stage == "L1":
        return ("K", "high") if amp else ("B", "very low")
    if stage == "L2":
        if amp:
            return "N", "high"
        if under18:
            return ("G", "intermediate") if q11 else ("D", "low")
        if v["differentiation_grade"] == "differentiating":
            return ("H", "intermediate") if q11 else ("E", "low")
        return "H", "intermediate"
    if stage == "M":
        if not under18:
            return "P", "high"
        if amp:
            return "O", "high"
        if v["ploidy"] == "hyperdiploid":
            return "F", "low"
        return ("I", "intermediate") if age == "<12 mo" else ("J", "intermediate")
    if not under18:  # MS >= 18 months does not exist
        return "", INDETERMINATE
    if amp:
        return "R", "high"
    return ("Q", "high") if q11 else ("C", "very low")


def cog_oracle(v):
    """PDQ Table 3 (Irwin 2021): high rows 1-6, low rows 1-3, everything else intermediate."""
    stage, age = v["inrg_stage"], v["age_band"]
    amp = v["mycn_amplified"] == "1"
    uh = v["histology"] == "unfavourable"
    unfavourable_feature = uh or v["segmental_aberrations"] == "1" or v["ploidy"] == "diploid"
    if stage == "MS" and age == ">=18 mo":
        return INDETERMINATE
    high = ((stage == "M" and age == ">=18 mo")
            or (stage == "M" and age != ">=18 mo" and amp)
            or (stage in ("MS", "L2") and amp)
            or (stage == "L2" and uh and age == ">=18 mo")
            or (stage in ("M", "MS") and age == "12 to <18 mo" and unfavourable_feature)
            or (stage == "L1" and v["resection"] == "incomplete" and amp))
    low = ((stage == "L1" and not amp)
           or (stage == "L1" and v["resection"] == "complete" and amp)
           or (stage == "MS" and age == "<12 mo" and v["symptomatic"] == "0" and not uh
               and v["segmental_aberrations"] == "0" and v["ploidy"] == "hyperdiploid" and not amp))
    assert not (high and low)
    return "high" if high else "low" if low else "intermediate"


def all_combinations():
    names = list(DOMAINS)
    for values in itertools.product(*(DOMAINS[n] for n in names)):
        yield dict(zip(names, values))


def as_inputs(v):
    return {**{k: x for k, x in v.items() if k != "age_band"}, "age_months": AGES[v["age_band"]]}


def in_gap(v):
    return any(all(v[name] in codes for name, codes in conditions) for conditions, _ in GAPS)


def test_every_combination_against_tables_and_oracles():
    """The whole input space: exactly one row applies (or a declared gap), and it is the oracle's."""
    n = 0
    for v in all_combinations():
        n += 1
        for table, system in ((INRG_TABLE, "INRG"), (COG_TABLE, "COG")):
            rows = [r for r in table if all(v[name] in codes for name, codes in r.when)]
            result = classify(system, as_inputs(v))
            if in_gap(v):
                assert rows == [] and result.risk == INDETERMINATE and result.needs == (), (system, v)
                continue
            assert len(rows) == 1, (system, v, [r.row_id for r in rows])
            assert (result.group, result.risk) == (rows[0].group, rows[0].risk)
        inrg, cog = classify("INRG", as_inputs(v)), classify("COG", as_inputs(v))
        assert (inrg.group, inrg.risk) == inrg_oracle(v), v
        assert cog.risk == cog_oracle(v), v
    assert n == 4 * 3 * 4 * 3 * 2 ** 7


def test_missing_input_is_never_defaulted():
    """Dropping one input: either every value of it gives the same risk (and that risk is given), or
    the result is indeterminate and names it."""
    rng = random.Random(22)
    combos = [v for v in all_combinations() if not in_gap(v)]
    for v in rng.sample(combos, 300):
        for system in ("INRG", "COG"):
            for name in DOMAINS:
                partial = as_inputs(v)
                dropped = "age_months" if name == "age_band" else name
                del partial[dropped]
                risks = set()
                for code in DOMAINS[name]:
                    full = as_inputs({**v, name: code})
                    risks.add(classify(system, full).risk)
                result = classify(system, partial)
                if len(risks) == 1 and INDETERMINATE not in risks:
                    assert result.risk == risks.pop(), (system, name, v)
                else:
                    assert result.risk == INDETERMINATE and dropped in result.needs, (system, name, v)
                    assert result.reason.startswith(f"{system} indeterminate: needs")


def test_needs_names_the_missing_input():
    result = classify("INRG", {"inrg_stage": "M", "age_months": 10, "mycn_amplified": "0"})
    assert result.risk == INDETERMINATE and result.needs == ("ploidy",)
    assert result.reason == "INRG indeterminate: needs ploidy"
    assert classify("INRG", {}).needs[0] == "inrg_stage"
    # irrelevant missing inputs do not block: stage M at >= 18 months is P whatever MYCN is
    assert classify("INRG", {"inrg_stage": "M", "age_months": 30}).group == "P"


@pytest.mark.parametrize("days,band", [(0, "<12 mo"), (364, "<12 mo"), (365, "12 to <18 mo"),
                                       (546, "12 to <18 mo"), (547, ">=18 mo"), (548, ">=18 mo")])
def test_age_cutoffs_in_days(days, band):
    assert age_band(days / DAYS_PER_MONTH) == band


def test_age_547_days_is_18_months_for_both_systems():
    base = dict(inrg_stage="M", mycn_amplified="0", ploidy="diploid", histology="favourable",
                segmental_aberrations="0")
    assert classify("INRG", {**base, "age_months": 547 / DAYS_PER_MONTH}).group == "P"
    assert classify("INRG", {**base, "age_months": 546 / DAYS_PER_MONTH}).group == "J"
    assert classify("INRG", {**base, "age_months": 364 / DAYS_PER_MONTH}).group == "I"


def test_disagreement_is_reported():
    # INRG D (low) vs COG intermediate: L2 < 18 months, MYCN not amplified
    d = classify_patient(dict(inrg_stage="L2", age_months=8, **NB, mycn_amplified="0", aberration_11q="0"))
    assert d.disagree and d.note == "INRG and COG disagree: INRG low (D), COG intermediate"
    # INRG K (high) vs COG low: L1 MYCN amplified, completely resected
    k = classify_patient(dict(inrg_stage="L1", age_months=8, **NB, mycn_amplified="1", resection="complete"))
    assert k.disagree and "INRG high (K), COG low" in k.note
    # INRG very low (B) and COG low agree
    b = classify_patient(dict(inrg_stage="L1", age_months=8, **NB, mycn_amplified="0"))
    assert not b.disagree and b.note == ""
    # INRG Q (high) vs COG intermediate: MS < 12 months with an 11q aberration
    q = classify_patient(dict(inrg_stage="MS", age_months=6, mycn_amplified="0", aberration_11q="1",
                              segmental_aberrations="1", symptomatic="0", histology="favourable"))
    assert q.disagree and "INRG high (Q), COG intermediate" in q.note


def test_ms_at_18_months_is_outside_both_tables():
    result = classify_patient({"inrg_stage": "MS", "age_months": 20, "mycn_amplified": "0"})
    assert result.inrg.risk == result.cog.risk == INDETERMINATE
    assert "stage MS is defined only below 18 months" in result.note
    assert result.missing_inputs == ()


def test_parse_inputs_is_strict_and_names_row_column_value_and_codes():
    inputs, problems = parse_inputs({"inrg_stage": " L2 ", "mycn_amplified": "1.0", "ploidy": "Diploid",
                                     "age_months": "-1", "aberration_11q": ""}, row=7)
    assert inputs == {"inrg_stage": "L2"}
    assert [(p.row, p.column, p.value) for p in problems] == [
        (7, "age_months", "-1"), (7, "mycn_amplified", "1.0"), (7, "ploidy", "Diploid")]
    assert str(problems[2]) == ("row 7: ploidy = 'Diploid' is not accepted; expected hyperdiploid | diploid "
                                "(or an empty cell)")
    assert "0 to 360" in str(problems[0])
    assert parse_inputs({"age_months": "nan"})[1][0].column == "age_months"


def test_input_names_are_the_columns_of_the_issue():
    assert RISK_INPUT_NAMES[:7] == ("inrg_stage", "age_months", "histologic_category",
                                    "differentiation_grade", "mycn_amplified", "aberration_11q", "ploidy")


def test_contradicting_inputs_are_rejected():
    _, problems = parse_inputs({"histologic_category": "GNB intermixed", "histology": "unfavourable",
                                "aberration_11q": "1", "segmental_aberrations": "0"}, row=3)
    assert [(p.row, p.column, p.value) for p in problems] == [(3, "histology", "unfavourable"),
                                                             (3, "segmental_aberrations", "0")]
    assert "INPC favourable histology (histologic_category = GNB intermixed)" in str(problems[0])
    assert parse_inputs({"histologic_category": "GNB nodular", "histology": "unfavourable",
                         "aberration_11q": "1", "segmental_aberrations": "1"})[1] == []
