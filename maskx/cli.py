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
from collections.abc import Callable, Sequence
from pathlib import Path


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
    parser.add_argument("--contrast", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="range of RGB distances between an object's mean colour and what "
                             "it covers (default: the benchmark's, 0.3 0.8)")
    parser.add_argument("--edge-softness", type=float,
                        help="largest blur of object edges in pixels (default: the "
                             "benchmark's, 1.0)")
    # The names of maskx.data.synthetic's CATEGORY_SETS, spelled out to keep --help fast.
    parser.add_argument("--categories", choices=("families", "composed"), default="families",
                        help="category set: families (the default benchmark, split synthetic) "
                             "or composed (shared variants of six outlines, split "
                             "synthetic_composed)")
    return parser


def run_generate_data(args: argparse.Namespace) -> int:
    from maskx.data.synthetic import SYNTHETIC_SPLITS, SceneConfig, generate_dataset

    knobs = {"categories": args.categories}
    if args.contrast is not None:
        knobs["contrast"] = tuple(args.contrast)
    if args.edge_softness is not None:
        knobs["edge_softness"] = args.edge_softness
    start = time.perf_counter()
    counts = generate_dataset(args.out, args.num_train, args.num_val, args.seed,
                              SceneConfig(**knobs))
    elapsed = time.perf_counter() - start
    for subset, count in counts.items():
        print(f"{subset}: {count['images']} images, {count['instances']} instances -> "
              f"{args.out / 'annotations' / f'instances_{subset}.json'}")
    split = "synthetic" if args.categories == "families" else f"synthetic_{args.categories}"
    print(f"done in {elapsed:.1f} s; split {split!r} has masks (set A) for: "
          f"{', '.join(SYNTHETIC_SPLITS[split][1])}")
    return 0


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval",
        help="COCO AP on class sets A and B, of a trained model or of a results file",
        description="Run COCOeval (bbox and segm) on the A and B classes of a split and on all "
                    "classes, either on a results file (--results) or on a trained model's "
                    "predictions (--checkpoint: every mask head of the model on the same "
                    "detections). SPLIT is voc, nonvoc, E{trial}_A{n}B{80-n}, synthetic, "
                    "synthetic_disjoint, synthetic_A18B6, synthetic_composed, "
                    "synthetic_composed_unseen, all, ids:ID,ID,... or names:NAME,NAME,...",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--results", type=Path, help="COCO results json to score")
    source.add_argument("--checkpoint", type=Path, help="a trained model (checkpoint or run directory)")
    parser.add_argument("--annotations", type=Path, help="ground-truth COCO json")
    parser.add_argument("--images", type=Path, help="image folder of --annotations (with --checkpoint)")
    parser.add_argument("--data", type=Path,
                        help="a data root in COCO layout instead of --annotations/--images "
                             "(DATA/annotations/instances_SUBSET.json, DATA/SUBSET/)")
    parser.add_argument("--subset", default="val", help="subset under --data (default: val)")
    parser.add_argument("--split", help="class split (see above); with --checkpoint the "
                                        "model's training split by default")
    parser.add_argument("--heads", nargs="+", help="mask heads to evaluate (default: all)")
    parser.add_argument("--iou-types", nargs="+", choices=("bbox", "segm"),
                        help="evaluations to run (default: every one the results support)")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="add 95%% intervals from N bootstrap resamples of the images")
    parser.add_argument("--batch-size", type=int, default=2, help="images per inference batch")
    parser.add_argument("--device", default="cpu", help="inference device, e.g. cpu or cuda")
    parser.add_argument("--out", type=Path, help="write the metrics here as JSON")
    parser.add_argument("--results-dir", type=Path,
                        help="with --checkpoint: write each head's COCO results json here")
    return parser


def _print_intervals(result, names) -> None:
    for name in names:
        print(f"{name}: AP with 95% bootstrap interval")
        for subset, by_type in result.intervals[name].items():
            for iou_type, values in by_type.items():
                ap = values["AP"]
                if ap["estimate"] < 0:
                    continue
                print(f"  {subset:<4} {iou_type:<5} {100 * ap['estimate']:5.1f} "
                      f"[{100 * ap['low']:.1f}, {100 * ap['high']:.1f}]")


def run_eval(args: argparse.Namespace) -> int:
    from maskx.data import coco_layout
    from maskx.data.validation import read_json
    from maskx.evaluation import SplitEvaluator, format_metrics_table

    if args.data is not None:
        if args.annotations or args.images:
            raise ValueError("give --data or --annotations/--images, not both")
        args.images, args.annotations = coco_layout(args.data, args.subset)
    if args.annotations is None:
        raise ValueError("give the ground truth: --annotations (or --data)")
    if args.results is not None:
        if args.split is None:
            raise ValueError("--split is needed to score a results file")
        results_by_name = {str(args.results): read_json(args.results)}
        split = args.split
    else:
        results_by_name, split = _predict_dataset(args)
    evaluator = SplitEvaluator(args.annotations, split)
    print(f"split {split}: A = {len(evaluator.a_ids)} classes, B = {len(evaluator.b_ids)} classes")
    metrics = {}
    for name, results in results_by_name.items():
        metrics[name] = evaluator.evaluate(results, args.iou_types, results_path=name)
        print(f"{name}: {len(results)} results")
        print(format_metrics_table(metrics[name]))
    if args.bootstrap:
        intervals = evaluator.evaluate_with_intervals(results_by_name, args.iou_types, num_samples=args.bootstrap)
        _print_intervals(intervals, results_by_name)
        for name in results_by_name:
            metrics[name] = {"metrics": metrics[name], "intervals": intervals.intervals[name]}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        single = metrics[str(args.results)] if args.results is not None else metrics
        args.out.write_text(json.dumps(single, indent=2) + "\n")
        print(f"metrics written to {args.out}")
    return 0


def _predict_dataset(args: argparse.Namespace) -> tuple[dict[str, list], str]:
    """Every requested head of a checkpoint over the evaluation images."""
    from maskx.engine.inference import evaluation_dataset, run_inference
    from maskx.engine.trained_model import load_trained_model

    if args.images is None:
        raise ValueError("--checkpoint needs the images: --images (or --data)")
    trained = load_trained_model(args.checkpoint, args.device)
    dataset = evaluation_dataset(args.images, args.annotations)
    run = run_inference(trained, dataset, heads=args.heads, batch_size=args.batch_size, device=args.device)
    print(f"{run.images} images in {run.seconds:.1f} s ({run.seconds / max(run.images, 1):.2f} s per image, "
          f"{len(run.results)} head{'s' if len(run.results) > 1 else ''})")
    if args.results_dir:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        for name, results in run.results.items():
            path = args.results_dir / f"results_{name}.json"
            path.write_text(json.dumps(results))
            print(f"results of {name} written to {path}")
    return run.results, args.split or trained.split


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train Mask^X R-CNN (end-to-end, or stage-wise: detector, then mask heads)",
        description="Train from a recipe (configs/*.yaml) with KEY=VALUE overrides, e.g. "
                    "--set solver.base_lr=0.01 --set train.stage=detector. The run directory "
                    "gets config.yaml, metrics.jsonl, checkpoints, model_final.pt and "
                    "loss_curve.png. Ctrl-C or SIGTERM saves a checkpoint and stops; --resume "
                    "continues. Under torchrun the processes train data-parallel.",
    )
    parser.add_argument("--config", type=Path, help="recipe YAML (default with --resume: OUT/config.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a configuration value (repeatable), e.g. solver.iterations=500")
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in OUT from its newest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run_train(args: argparse.Namespace) -> int:
    from maskx.engine.config import load_run_config
    from maskx.engine.trainer import CONFIG_NAME, train

    path = args.config
    if path is None:
        if not args.resume:
            raise ValueError("give a recipe: --config FILE (or --resume an existing run)")
        path = args.out / CONFIG_NAME
    config = load_run_config(path, args.overrides)
    result = train(config, args.out, resume=args.resume, progress=not args.no_progress)
    if result.interrupted_by is not None:
        print(f"stopped by signal {result.interrupted_by} at iteration {result.iterations}; checkpoint "
              f"{result.checkpoint}; continue with: python -m maskx train --out {args.out} --resume",
              file=sys.stderr)
        return 128 + int(result.interrupted_by)
    return 0


def add_predict_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict",
        help="draw a trained model's masks, boxes and classes on images",
        description="Write OUT/<image>.png (one per head when the model has several) with each "
                    "detection's mask, box, class and score; classes of set B (trained without "
                    "masks) are marked. Also writes OUT/results.json (COCO results, image ids in "
                    "the order of the images, with their file names).",
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help="a trained model (checkpoint or run directory)")
    parser.add_argument("images", nargs="+", type=Path, help="image files")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--heads", nargs="+", help="mask heads to draw (default: all)")
    parser.add_argument("--score-threshold", type=float, default=0.5, help="draw detections above this score")
    parser.add_argument("--device", default="cpu", help="inference device, e.g. cpu or cuda")
    return parser


def _read_image(path: Path):
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            pixels = np.array(image.convert("RGB"))
    except FileNotFoundError:
        raise ValueError(f"{path}: image not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    return torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255)


def run_predict(args: argparse.Namespace) -> int:
    from maskx.engine.inference import predict
    from maskx.engine.trained_model import load_trained_model
    from maskx.evaluation import detections_to_coco_results
    from maskx.visualize import draw_detections

    if not 0 <= args.score_threshold <= 1:
        raise ValueError(f"--score-threshold must lie in [0, 1], got {args.score_threshold}")
    images = [_read_image(path) for path in args.images]  # every file checked before any work
    trained = load_trained_model(args.checkpoint, args.device)
    names = trained.category_map.names
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for image_id, (path, image) in enumerate(zip(args.images, images), start=1):
        outputs = predict(trained, [image.to(args.device)], args.heads)
        for head, (detections,) in outputs.items():
            a_ids = set(trained.head_mask_category_ids.get(head, trained.category_map.category_ids))
            b_labels = [trained.category_map.label(i) for i in trained.category_map.category_ids if i not in a_ids]
            drawing = draw_detections(image, detections, names, b_labels, score_threshold=args.score_threshold)
            suffix = f".{head}" if len(outputs) > 1 else ""
            drawing.save(args.out / f"{path.stem}{suffix}.png")
            for result in detections_to_coco_results([image_id], [detections], trained.category_map):
                results.append({**result, "file_name": path.name, "head": head})
        counts = {head: int((d[0]["scores"] > args.score_threshold).sum()) for head, d in outputs.items()}
        print(f"{path}: " + ", ".join(f"{head} {count}" for head, count in counts.items())
              + " detections above the threshold")
    (args.out / "results.json").write_text(json.dumps(results))
    print(f"drawings and results.json written to {args.out}")
    return 0


def _add_experiment_parser(subparsers, name: str, default_config: str, help_text: str, description: str):
    parser = subparsers.add_parser(name, help=help_text, description=description)
    parser.add_argument("--config", type=Path, default=Path(default_config), help=f"experiment YAML (default: {default_config})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an experiment setting (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (re-running continues it)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--train-only", action="store_true",
                        help="train and stop (e.g. one seed per process: --set 'seeds=[1]'); a later "
                             "run without it finds the trained stages and evaluates")
    return parser


def add_demo_parser(subparsers) -> argparse.ArgumentParser:
    return _add_experiment_parser(
        subparsers, "demo", "configs/demo.yaml",
        "generate the synthetic benchmark, train a detector and mask heads, compare them",
        "The project's main job (make demo): the paper's comparison in miniature on 2 CPU cores. "
        "Writes OUT/table.md, OUT/metrics.json and OUT/predictions.png.")


def add_benchmark_model_parser(subparsers) -> argparse.ArgumentParser:
    return _add_experiment_parser(
        subparsers, "benchmark-model", "configs/benchmark_model.yaml",
        "the paper's ablation rows on the synthetic benchmark at a budget that decides them",
        "Longer training, more validation images, two seeds, stage-wise and end-to-end rows. "
        "Writes OUT/table.md, OUT/metrics.json and OUT/predictions.png.")


def run_experiment(args: argparse.Namespace) -> int:
    from maskx.engine.experiment import Experiment, load_experiment

    config = load_experiment(args.config, args.overrides)
    Experiment(config, args.out, progress=not args.no_progress).run(evaluate=not args.train_only)
    print(f"{'trained stages' if args.train_only else 'table, metrics and predictions'} written to {args.out}")
    return 0


Command = tuple[Callable[..., argparse.ArgumentParser], Callable[[argparse.Namespace], int]]

COMMANDS: dict[str, Command] = {
    "generate-data": (add_generate_data_parser, run_generate_data),
    "train": (add_train_parser, run_train),
    "eval": (add_eval_parser, run_eval),
    "predict": (add_predict_parser, run_predict),
    "demo": (add_demo_parser, run_experiment),
    "benchmark-model": (add_benchmark_model_parser, run_experiment),
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
    # Bad input files (AnnotationError, ConfigError and CheckpointError are ValueErrors),
    # split names, arguments and a training run whose loss diverged end the command with
    # their message rather than a traceback.
    try:
        return run(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
