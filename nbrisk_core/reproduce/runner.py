"""A small resumable stage runner.

Each stage writes ``<out>/stages/<name>.json`` when it finishes (status, wall time, result).
Re-running the protocol skips finished stages and resumes at the first unfinished one, so an
interrupted CPU run (hours for the ``paper`` profile) continues where it stopped. A stage that
fails stops the run with a message naming the stage; the finished stages' outputs are kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbrisk_core.jsonable import json_default


class StageFailed(RuntimeError):
    """A protocol stage failed; the outputs of the stages before it are kept."""


@dataclass
class Context:
    """What the stages share: paths, the profile, and the results of finished stages."""

    data_dir: Path
    out_dir: Path
    profile: str = "quick"
    device: str = "auto"
    seed: int = 2025
    #: weights the Swin-T variants start from (``nbrisk train --init``): the synthetic pretraining
    #: stage stands where the paper's ImageNet weights stand; None = from scratch
    swin_init: Path | None = None
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        p = self.out_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    run: Callable[[Context], dict]


def _marker(ctx: Context, stage: Stage) -> Path:
    return ctx.path("stages", f"{stage.name}.json")


def run_stages(stages: list[Stage], ctx: Context, log: Callable[[str], None] = print) -> Context:
    """Run ``stages`` in order, resuming after the last finished one. Returns the context."""
    settings = {"profile": ctx.profile, "seed": ctx.seed, "data_dir": str(ctx.data_dir)}
    if ctx.swin_init is not None:
        settings["swin_init"] = str(ctx.swin_init)
    settings_file = ctx.path("stages", "settings.json")
    if settings_file.exists():
        previous = json.loads(settings_file.read_text())
        if previous != settings:
            raise StageFailed(
                f"{ctx.out_dir} holds a run with other settings ({previous}); "
                f"use another --out or delete it to start afresh"
            )
    settings_file.write_text(json.dumps(settings, indent=2))
    for number, stage in enumerate(stages, start=1):
        marker = _marker(ctx, stage)
        prefix = f"[{number}/{len(stages)}] {stage.title}"
        if marker.exists():
            record = json.loads(marker.read_text())
            if record.get("status") == "done":
                ctx.results[stage.name] = record["result"]
                ctx.timings[stage.name] = record["seconds"]
                log(f"{prefix}: already done ({record['seconds']:.1f} s), resuming after it")
                continue
        log(f"{prefix} ...")
        start = time.perf_counter()
        try:
            result = stage.run(ctx)
        except Exception as error:  # noqa: BLE001 - any failure stops the run with the stage named
            marker.write_text(json.dumps({"status": "failed", "error": f"{type(error).__name__}: {error}"}))
            raise StageFailed(f"stage '{stage.name}' ({stage.title}) failed: {error}") from error
        seconds = time.perf_counter() - start
        marker.write_text(json.dumps({"status": "done", "seconds": seconds, "result": result},
                                     indent=2, default=json_default))
        ctx.results[stage.name] = json.loads(marker.read_text())["result"]
        ctx.timings[stage.name] = seconds
        log(f"{prefix}: done in {seconds:.1f} s")
    return ctx

