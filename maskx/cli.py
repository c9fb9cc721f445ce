"""Command line: ``python -m maskx <command> ...``.

Each command is a pair ``add_<name>_parser(subparsers)`` / ``run_<name>(args)``
registered in ``COMMANDS``; a new command adds its pair there. Commands import their
dependencies when they run, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Sequence


def add_generate_data_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "generate-data",
        help="write the synthetic partially supervised benchmark (COCO format)",
        description="Write OUT/annotations/instances_{train,val}.json and OUT/{train,val}/*.png.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--num-train", type=int, default=400, help="training images")
    parser.add_argument("--num-val", type=int, default=100, help="validation images")
    parser.add_argument("--seed", type=int, default=0, help="random seed (non-negative)")
    return parser


def run_generate_data(args: argparse.Namespace) -> int:
    from maskx.data.synthetic import SYNTHETIC_SPLIT_A, generate_dataset

    start = time.perf_counter()
    counts = generate_dataset(args.out, args.num_train, args.num_val, args.seed)
    elapsed = time.perf_counter() - start
    for subset, count in counts.items():
        print(f"{subset}: {count['images']} images, {count['instances']} instances -> "
              f"{args.out / 'annotations' / f'instances_{subset}.json'}")
    print(f"done in {elapsed:.1f} s; default split 'synthetic' has masks (set A) for: "
          f"{', '.join(SYNTHETIC_SPLIT_A)}")
    return 0


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval",
        help="COCO AP of detection results on class sets A and B",
        description="Run COCOeval (bbox and segm) on the A and B classes of a split and on all "
                    "classes. SPLIT is voc, nonvoc, E{trial}_A{n}B{80-n}, synthetic, "
                    "ids:ID,ID,... or names:NAME,NAME,...",
    )
    parser.add_argument("--annotations", required=True, type=Path, help="ground-truth COCO json")
    parser.add_argument("--results", required=True, type=Path, help="COCO results json")
    parser.add_argument("--split", required=True, help="class split (see above)")
    parser.add_argument("--iou-types", nargs="+", choices=("bbox", "segm"),
                        help="evaluations to run (default: every one the results support)")
    parser.add_argument("--out", type=Path, help="write the metrics here as JSON")
    return parser


def run_eval(args: argparse.Namespace) -> int:
    from maskx.data.validation import read_json
    from maskx.evaluation import SplitEvaluator, format_metrics_table

    evaluator = SplitEvaluator(args.annotations, args.split)
    results = read_json(args.results)
    metrics = evaluator.evaluate(results, args.iou_types, results_path=str(args.results))
    print(f"split {args.split}: A = {len(evaluator.a_ids)} classes, "
          f"B = {len(evaluator.b_ids)} classes; {len(results)} results")
    print(format_metrics_table(metrics))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"metrics written to {args.out}")
    return 0


Command = tuple[Callable[..., argparse.ArgumentParser], Callable[[argparse.Namespace], int]]

COMMANDS: dict[str, Command] = {
    "generate-data": (add_generate_data_parser, run_generate_data),
    "eval": (add_eval_parser, run_eval),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m maskx", description="maskx: partially supervised instance segmentation")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_parser, _) in COMMANDS.items():
        add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _, run = COMMANDS[args.command]
    # Bad input files (AnnotationError is a ValueError), split names and arguments end the
    # command with their message rather than a traceback.
    try:
        return run(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
