"""glibc malloc settings of the scoring workers (nbrisk_core.allocator)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")

# 40 allocations of an 8 MiB buffer, written through (as a tensor's output is): minor page faults before
# and after tune_for_inference, in a process started with Dask's worker setting
_PROBE = r"""
import json, resource, sys
import numpy as np
from nbrisk_core.allocator import tune_for_inference

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(40):
        buffer = np.empty(8 << 20, dtype=np.uint8)
        buffer.fill(1)
        del buffer
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

untuned = faults()
applied = tune_for_inference()
faults()  # the first pass after tuning grows the heap once
print(json.dumps({"untuned": untuned, "tuned": faults(), "applied": applied, "again": tune_for_inference()}))
"""


def test_tuning_stops_the_page_faults_a_dask_worker_setting_causes():
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}  # Dask's distributed.nanny.pre-spawn-environ
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout)
    # untuned: each 8 MiB buffer is mapped afresh and faulted in again (~20,000 faults here)
    assert figures["untuned"] > 40 * 200, figures
    assert figures["tuned"] < figures["untuned"] / 20, figures
    assert figures["applied"] == {"mmap_threshold": 32 << 20, "trim_threshold": 256 << 20}
    assert figures["again"] == figures["applied"]


def test_a_threshold_out_of_range_is_an_error_not_coerced():
    from nbrisk_core.allocator import tune_for_inference

    for bad in (0, -1, 2 ** 31, 1.5):
        with pytest.raises(ValueError, match="mmap_threshold=.*expected a whole number of bytes"):
            tune_for_inference(mmap_threshold=bad)


def test_a_scoring_worker_process_is_tuned(tmp_path):
    """The partition task tunes its process when it loads the model (as a Dask worker would run it)."""
    code = ("import json\nfrom nbrisk_core import allocator, batch_score\n"
            "from nbrisk_core.classifier.model_io import shipped_model_path\n"
            "batch_score._predictor(str(shipped_model_path('art')), 1)\n"
            "print(json.dumps(allocator._applied))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"mmap_threshold": 32 << 20,
                                                               "trim_threshold": 256 << 20}
