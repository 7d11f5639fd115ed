"""Rebuild ibsi1_reference.csv from the IBSI 1 reference manual's reStructuredText source.

Source: github.com/theibsi/ibsi-doc, docs/03_Image_features.rst (CC BY 4.0). Run:
    python make_reference_csv.py 03_Image_features.rst > ibsi1_reference.csv
Each feature section carries its permanent 4-character IBSI code and a table of reference values
(data set, aggregation method for texture families, value, tolerance, consensus).
"""

from __future__ import annotations

import csv
import re
import sys

FAMILIES = [  # section title prefix -> family key
    ("Morphological features", "morph"), ("Local intensity features", "loc"),
    ("Intensity-based statistical features", "stat"), ("Intensity histogram features", "ih"),
    ("Intensity-volume histogram features", "ivh"), ("Grey level co-occurrence based features", "cm"),
    ("Grey level run length based features", "rlm"), ("Grey level size zone based features", "szm"),
    ("Grey level distance zone based features", "dzm"),
    ("Neighbourhood grey tone difference based features", "ngt"),
    ("Neighbouring grey level dependence based features", "ngl"),
]


def number(text: str) -> str:
    text = text.replace(":math:`-`\\ ", "-").replace("\\ ", "").strip()
    m = re.fullmatch(r":math:`(-?[\d.]+)\s*\\times\s*10\^\{(-?\d+)\}`", text)
    if m:
        return f"{m.group(1)}e{m.group(2)}"
    m = re.fullmatch(r":math:`-`\s*:math:`([\d.]+)\s*\\times\s*10\^\{(-?\d+)\}`", text)
    if m:
        return f"-{m.group(1)}e{m.group(2)}"
    text = text.replace(":math:`-`", "-").replace("`", "").replace(":math:", "")
    return text.replace(" ", "")


def main(path: str) -> None:
    lines = open(path, encoding="utf-8").read().splitlines()
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["family", "feature", "code", "data", "aggregation", "value", "tolerance", "consensus"])
    family = title = code = ""
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if nxt and set(nxt) <= set("-^") and len(nxt) >= len(line.strip()) > 0:
            if set(nxt) == {"-"}:
                family = next((k for t, k in FAMILIES if line.strip().startswith(t)), family)
            title = line.strip()
        m = re.search(r"text-align:right\">(\w{4})</p>", line)
        if m:
            code = m.group(1)
        cells = [c.strip().strip("*").strip() for c in line.strip().strip("|").split("|")]
        if line.strip().startswith("|") and cells and (cells[0].startswith("dig. phantom")
                                                       or cells[0].startswith("config.")):
            data = "digital" if cells[0].startswith("dig") else cells[0].split()[-1]
            if len(cells) == 5:
                aggr, value, tol, cons = cells[1], cells[2], cells[3], cells[4]
            else:
                aggr, value, tol, cons = "", cells[1], cells[2], cells[3]
            tol = "" if tol in ("—", "-", "") else number(tol)
            out.writerow([family, title, code, data, aggr, number(value), tol, cons])


if __name__ == "__main__":
    main(sys.argv[1])
