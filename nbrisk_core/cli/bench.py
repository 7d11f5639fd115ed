"""`nbrisk bench TARGET [--json]`: performance benchmarks (figures measured in one run)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys

from nbrisk_core.bench import BENCH_TARGETS, MOVED_TARGETS


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="run a performance benchmark and print its figures")
    sub = parser.add_subparsers(dest="bench_target", metavar="TARGET", parser_class=type(parser))
    sub.required = True
    for target, module in BENCH_TARGETS.items():
        target_parser = sub.add_parser(target, help=f"benchmark: {target}")
        target_parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
        target_parser.set_defaults(handler=run, bench_module=module)
        adder = _optional_add_arguments(module)
        if adder is not None:
            adder(target_parser)
    for target, pointer in MOVED_TARGETS.items():
        # any arguments are accepted (prefix "+": "--sessions 10" is not parsed); the answer is the pointer
        moved = sub.add_parser(target, help=f"moved: {pointer}", add_help=False, prefix_chars="+")
        moved.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
        moved.set_defaults(handler=moved_target, pointer=pointer)
    everything = sub.add_parser("all", help="run every benchmark")
    everything.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    everything.set_defaults(handler=run_all)


def _optional_add_arguments(module: str):
    # argument declarations must stay cheap: bench modules import heavy things inside run()
    try:
        mod = importlib.import_module(f"nbrisk_core.bench.{module}")
    except ModuleNotFoundError:
        return None
    return getattr(mod, "add_arguments", None)


def moved_target(args) -> int:
    print(f"nbrisk bench {args.bench_target}: moved: {args.pointer}", file=sys.stderr)
    return 2


def run(args) -> int:
    try:
        mod = importlib.import_module(f"nbrisk_core.bench.{args.bench_module}")
    except ModuleNotFoundError:
        print(f"nbrisk bench {args.bench_target}: this benchmark is not implemented yet", file=sys.stderr)
        return 1
    # with --json, stdout carries the one JSON object and nothing else: the progress lines go to stderr
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        figures = mod.run(args)
    if args.json:
        print(json.dumps(figures, indent=2, default=float))
    return 0


def run_all(args) -> int:
    results, status = {}, 0
    for target, module in BENCH_TARGETS.items():
        try:
            mod = importlib.import_module(f"nbrisk_core.bench.{module}")
        except ModuleNotFoundError:
            print(f"(skipping {target}: not implemented yet)")
            continue
        sub_args = argparse.Namespace(json=False, bench_target=target, bench_module=module)
        parser = argparse.ArgumentParser()
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(parser)
            sub_args = parser.parse_args([], namespace=sub_args)
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            print(f"== {target}")
            results[target] = mod.run(sub_args)
    if args.json:
        print(json.dumps(results, indent=2, default=float))
    return status
