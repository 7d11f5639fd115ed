"""``nbrisk bench imaging``: load / region-grow / render figures of the Case page's imaging path.

Targets (from the imaging issue; printed, never asserted):

* load, sort and convert to HU a 300-slice 512 x 512 uncompressed series: < 1.5 s on 2 cores, peak
  extra memory < 2 x the HU volume (measured with :mod:`tracemalloc`, which numpy reports to, in a
  second, separate load so that tracing does not slow the timed one);
* seeded region grow + area curve for one phase: < 1 s;
* one viewer slice change (window + contour overlay -> RGB): < 150 ms.
"""

from __future__ import annotations

TARGET_LOAD_S = 1.5
TARGET_MEMORY_RATIO = 2.0
TARGET_GROW_S = 1.0
TARGET_RENDER_MS = 150.0


def add_arguments(parser) -> None:
    parser.add_argument("--slices", type=int, default=300, help="slices in the synthetic series (default 300)")
    parser.add_argument("--size", type=int, default=512, help="rows = columns of each slice (default 512)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported (default 3)")


def synthetic_volume(n_slices: int, size: int, spacing_mm: float = 0.7, slice_mm: float = 1.0):
    """An abdomen-like HU volume with an ellipsoid tumour (built slice by slice: low memory)."""
    import numpy as np

    rng = np.random.default_rng(0)
    y, x = np.ogrid[0:size, 0:size]
    body = ((y - size / 2) / (size * 0.40)) ** 2 + ((x - size / 2) / (size * 0.46)) ** 2 <= 1
    base = np.where(body, -60, -1000).astype(np.int16)
    spine = (y - size * 0.68) ** 2 + (x - size / 2) ** 2 <= (size * 0.06) ** 2
    base[spine] = 500
    hu = np.empty((n_slices, size, size), dtype=np.int16)
    centre = (n_slices / 2, size * 0.45, size * 0.6)
    radii_mm = (40.0, 35.0, 30.0)
    for k in range(n_slices):
        plane = base.copy()
        u = ((k - centre[0]) * slice_mm / radii_mm[0]) ** 2
        if u < 1:
            scale = np.sqrt(1 - u)
            tumour = (((y - centre[1]) * spacing_mm / (radii_mm[1] * scale)) ** 2
                      + ((x - centre[2]) * spacing_mm / (radii_mm[2] * scale)) ** 2) <= 1
            plane[tumour] = 45
        hu[k] = plane + rng.normal(0, 8, size=(size, size)).astype(np.int16)
    seed = (int(centre[0]), int(centre[1]), int(centre[2]))
    return hu, seed


def run(args) -> dict:
    import os
    import statistics
    import tempfile
    import time
    import tracemalloc
    from pathlib import Path

    import numpy as np

    from nbrisk_core.imaging.dicom_io import load_study
    from nbrisk_core.imaging.render import render_slice
    from nbrisk_core.imaging.segmentation import align_phase, segment_from_seed
    from nbrisk_core.imaging.synthetic import write_ct_series

    n, size, repeats = args.slices, args.size, max(1, args.repeats)
    figures: dict = {"slices": n, "size": size}
    with tempfile.TemporaryDirectory(prefix="nbrisk-bench-imaging-") as tmp:
        hu, seed = synthetic_volume(n, size)
        write_ct_series(Path(tmp) / "series", hu, pixel_spacing=(0.7, 0.7), slice_spacing=1.0, shuffle_seed=1)
        volume_bytes = hu.nbytes
        del hu
        print(f"wrote {n} slices of {size} x {size} (uncompressed, {volume_bytes / 1e6:.0f} MB of HU)")

        load_times, load_cpu = [], []
        for _ in range(repeats):
            start, cpu = time.perf_counter(), time.process_time()
            study = load_study(Path(tmp) / "series")
            load_times.append(time.perf_counter() - start)
            load_cpu.append(time.process_time() - cpu)
            series = study.series[0]
            del study
        load_s, load_cpu_s = statistics.median(load_times), statistics.median(load_cpu)
        tracemalloc.start()
        traced = load_study(Path(tmp) / "series")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del traced
        ratio = peak / volume_bytes
        # CPU time next to wall time: on a shared machine the wall clock also counts other jobs
        print(f"load + sort + HU: {load_s:.2f} s wall, {load_cpu_s:.2f} s CPU (median of {repeats}; "
              f"target < {TARGET_LOAD_S} s, ratio {load_s / TARGET_LOAD_S:.2f}; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        print(f"peak extra memory while loading: {peak / 1e6:.0f} MB = {ratio:.2f} x the HU volume "
              f"(target < {TARGET_MEMORY_RATIO})")
        assert series.n_slices == n, "the series did not load completely"

        grow_times, grow_cpu = [], []
        for _ in range(repeats):
            start, cpu = time.perf_counter(), time.process_time()
            segmentation = segment_from_seed(series.hu, seed, series.pixel_spacing, series.slice_spacing_mm)
            grow_times.append(time.perf_counter() - start)
            grow_cpu.append(time.process_time() - cpu)
        grow_s, grow_cpu_s = statistics.median(grow_times), statistics.median(grow_cpu)
        print(f"region grow + area curve (one phase): {grow_s:.3f} s wall, {grow_cpu_s:.3f} s CPU "
              f"(target < {TARGET_GROW_S} s, "
              f"ratio {grow_s / TARGET_GROW_S:.2f}); proposed slice {segmentation.max_area_slice} "
              f"(phantom centre {seed[0]})")

        # as on the Case page: the two other phases aligned (bone overlap) and used as companions;
        # stand-ins here are the same series shifted one slice and enhanced by 60 HU
        others = [np.roll(series.hu, 1, axis=0) + np.int16(60), np.roll(series.hu, -1, axis=0) + np.int16(30)]
        multi_times = []
        for _ in range(repeats):
            start = time.perf_counter()
            companions = [align_phase(series.hu, series.z_mm, other, series.z_mm) for other in others]
            segment_from_seed(series.hu, seed, series.pixel_spacing, series.slice_spacing_mm, companions=companions)
            multi_times.append(time.perf_counter() - start)
        del others, companions
        multi_s = statistics.median(multi_times)
        print(f"align two other phases + grow with them + area curve (what the Case page runs): {multi_s:.3f} s "
              f"wall (target < {TARGET_GROW_S} s, ratio {multi_s / TARGET_GROW_S:.2f})")

        k = segmentation.max_area_slice
        render_times = []
        for i in range(max(20, repeats)):
            plane = series.hu[(k + i) % n]
            mask = segmentation.mask[(k + i) % n]
            start = time.perf_counter()
            render_slice(plane, 400, 40, mask=mask, seed_rc=seed[1:])
            render_times.append((time.perf_counter() - start) * 1000)
        render_ms = statistics.median(render_times)
        print(f"viewer slice change (window + contour -> RGB): {render_ms:.1f} ms (target < "
              f"{TARGET_RENDER_MS:.0f} ms, ratio {render_ms / TARGET_RENDER_MS:.2f})")
    figures.update(load_s=round(load_s, 3), load_cpu_s=round(load_cpu_s, 3), load_target_s=TARGET_LOAD_S,
                   grow_cpu_s=round(grow_cpu_s, 3), load_average=round(os.getloadavg()[0], 2),
                   peak_memory_ratio=round(ratio, 3), peak_memory_target_ratio=TARGET_MEMORY_RATIO,
                   grow_s=round(grow_s, 3), grow_multiphase_s=round(multi_s, 3), grow_target_s=TARGET_GROW_S,
                   render_ms=round(render_ms, 2), render_target_ms=TARGET_RENDER_MS,
                   proposed_slice=int(k), phantom_centre_slice=int(seed[0]), volume_mb=round(volume_bytes / 1e6, 1),
                   np_version=np.__version__)
    return figures
