"""The training loop: end-to-end, stage 1 (the detector) or stage 2 (mask heads).

- ``e2e``: the whole model; box and RPN losses on A and B, the mask loss on A.
- ``detector``: stage 1 of stage-wise training, the model without a mask branch.
- ``mask``: stage 2, one or several mask heads trained side by side on a frozen stage-1
  detector: each step runs the detector once (no gradients) and every head reads the same
  sampled RoIs, so the heads differ only in themselves.

A run lives in its output directory: ``config.yaml`` (resolved), ``metrics.jsonl``,
periodic checkpoints (written atomically, the last few kept), ``model_final.pt`` and
``loss_curve.png``. ``resume=True`` continues from the newest checkpoint exactly as the
uninterrupted run would have gone on: same batches (``TrainingStream``), same random
state, same optimizer state. SIGINT and SIGTERM end the current step, save a checkpoint
and stop. Under ``torchrun`` the processes train with DistributedDataParallel.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from maskx.config import ConfigError, from_dict, to_dict, write_yaml
from maskx.data import CocoInstanceDataset
from maskx.data.splits import ALL_CLASSES, resolve_split
from maskx.engine import distributed
from maskx.engine.checkpoint import (
    FINAL_NAME,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    periodic_path,
    rotate,
    save_atomic,
)
from maskx.engine.config import HeadConfig, RunConfig
from maskx.engine.data import SeededSamples, StreamPosition, TrainingStream, subset_paths
from maskx.engine.metrics import MetricsFile, SmoothedValues, plot_losses, read_metrics
from maskx.engine.solver import build_optimizer, resolve_schedule
from maskx.model import MaskBranch, MaskXRCNN, ModelConfig, load_class_embedding

CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.jsonl"
LOSS_CURVE_NAME = "loss_curve.png"
# Settings a resumed run may change: they do not change what is computed.
RESUMABLE_CHANGES = ("train.threads", "train.log_period", "train.device", "data.num_workers")


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite: the configuration (often the learning rate) does
    not train. A ValueError, as other bad configurations."""


@dataclass
class TrainResult:
    out_dir: Path
    checkpoint: Path
    iterations: int
    seconds: float
    # Set when a signal stopped the run before its last iteration.
    interrupted_by: int | None = None


class _StopSignals:
    """SIGINT / SIGTERM ask the loop to stop after the current step (a second SIGINT
    interrupts at once)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _flatten(data, prefix: str = "") -> dict:
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def _to_device(targets: list[dict], device: torch.device) -> list[dict]:
    return [{k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in t.items()}
            for t in targets]


class MaskHeads(nn.Module):
    """Stage 2's trainable part: named mask branches, each with its own inputs."""

    def __init__(self, branches: dict[str, MaskBranch]):
        super().__init__()
        self.branches = nn.ModuleDict(branches)

    def forward(self, inputs: dict[str, tuple[Tensor, Tensor, Tensor]], box_predictor: nn.Module) -> dict[str, Tensor]:
        return {f"loss_mask/{name}": self.branches[name].loss(*inputs[name], box_predictor)
                for name in self.branches}


class Trainer:
    def __init__(self, config: RunConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True):
        self.config = config
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.progress = progress
        self.process = distributed.start(config.train.device)
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        self.stage = config.train.stage
        self._check_out_dir()
        # Every process looks before the first one writes into the run directory.
        distributed.barrier(self.process)
        self._setup_data()
        torch.manual_seed(config.train.seed)  # the same initial weights in every process
        self._setup_model()
        # The configuration as run: the model part as built (classes from the data; in
        # stage 2 the detector's own configuration). Written next to the checkpoints and
        # compared on resume.
        self.resolved = replace(config, model=self.model_config)
        self.optimizer = build_optimizer([self.trainable], config.solver)
        self.schedule = resolve_schedule(config.solver, config.data.images_per_batch * self.process.world_size)
        self.iteration = 0
        # Each process samples its own RoIs and anchors.
        torch.manual_seed(config.train.seed * 1_000_003 + self.process.rank)
        if self.resume_from is not None:
            self._restore(self.resume_from)

    # -- set-up -----------------------------------------------------------------------

    def _check_out_dir(self) -> None:
        self.resume_from = latest_checkpoint(self.out_dir) if self.resume else None
        if not self.resume and (self.out_dir / CONFIG_NAME).exists():
            raise ValueError(f"{self.out_dir} already holds a run; continue it with --resume, "
                             "or choose another output directory")
        if self.resume and self.resume_from is None and self.process.is_main:
            print(f"no checkpoint in {self.out_dir}: starting a new run")

    def _setup_data(self) -> None:
        data = self.config.data
        images, annotations = subset_paths(data, "train")
        if self.stage == "detector":
            split = ()  # boxes only: no mask is decoded
        elif self.stage == "mask" and any(h.split == ALL_CLASSES for h in self.head_configs().values()):
            split = ALL_CLASSES
        else:
            split = data.split
        self.dataset = CocoInstanceDataset(images, annotations, split=split, train=True)
        categories = self.dataset.coco.dataset["categories"]
        self.category_map = self.dataset.category_map
        self.categories = [{"id": int(i), "name": n} for i, n in zip(self.category_map.category_ids,
                                                                    self.category_map.names)]
        self.mask_category_ids = self._a_ids(data.split, categories) if self.stage == "e2e" else []
        if data.cache and data.num_workers:
            raise ConfigError("data.cache: the in-memory cache works with data.num_workers 0")
        samples = SeededSamples(self.dataset, data.flip_probability, cache=data.cache)
        self.stream = TrainingStream(samples, data.images_per_batch, self.config.train.seed,
                                     self.process.rank, self.process.world_size, data.num_workers)

    @staticmethod
    def _a_ids(split: str, categories) -> list[int]:
        return resolve_split(split, categories)[0]

    def head_configs(self) -> dict[str, HeadConfig]:
        """Stage 2's heads: the configured ones, or one with model.predictor."""
        return self.config.heads or {"mask": HeadConfig(predictor=self.config.model.predictor)}

    def _embedding(self, predictor) -> Tensor | None:
        if predictor.kind != "transfer" or predictor.transfer_input != "embedding":
            return None
        return load_class_embedding(predictor.embedding_file, self.category_map.num_classes, self.category_map.names)

    def _setup_model(self) -> None:
        config, device = self.config, self.process.device
        if self.stage == "mask":
            self._setup_heads()
            return
        self.model_config = replace(config.model, num_classes=self.category_map.num_classes,
                                    mask_on=self.stage == "e2e")
        self.model = MaskXRCNN(self.model_config, embedding=self._embedding(config.model.predictor)).to(device)
        self.model.train()
        self.trainable = self.model
        self.forward_model = (DistributedDataParallel(self.model) if self.process.distributed else self.model)

    def _setup_heads(self) -> None:
        config, device = self.config, self.process.device
        detector = load_checkpoint(config.train.detector)
        try:
            detector_config = from_dict(ModelConfig, detector["model_config"], "model")
        except (KeyError, ConfigError) as exc:
            raise CheckpointError(f"{detector['path']}: no valid model configuration ({exc})") from None
        if detector_config.mask_on or detector.get("heads"):
            raise CheckpointError(f"{detector['path']}: train.detector must be a stage-1 (detector) checkpoint")
        if detector.get("categories") != self.categories:
            raise CheckpointError(f"{detector['path']}: the detector was trained on other categories than "
                                  f"{self.dataset.annotation_file}")
        heads = self.head_configs()
        first = next(iter(heads.values())).predictor
        self.model_config = replace(detector_config, mask_on=True, mask=config.model.mask, predictor=first)
        self.model = MaskXRCNN(self.model_config, embedding=self._embedding(first)).to(device)
        missing, unexpected = self.model.load_state_dict(detector["model"], strict=False)
        if unexpected or any(not k.startswith("roi_heads.mask_branch.") for k in missing):
            raise CheckpointError(f"{detector['path']}: its weights do not fit its configuration")
        self.model.requires_grad_(False)
        self.model.eval()
        # Multi-scale training still draws image sizes as in training.
        self.model.transform.train()
        self.head_mask_labels = {}
        self.head_mask_category_ids = {}
        branches = {}
        for name, head in heads.items():
            ids = self._a_ids(head.split or config.data.split, self.dataset.coco.dataset["categories"])
            self.head_mask_category_ids[name] = ids
            self.head_mask_labels[name] = torch.as_tensor(self.category_map.label_mask(ids)).to(device)
            branches[name] = self.model.new_mask_branch(head.predictor, self._embedding(head.predictor)).to(device)
        self.heads = MaskHeads(branches).train()
        self.model.roi_heads.mask_branch = branches[next(iter(branches))]
        self.trainable = self.heads
        self.forward_heads = DistributedDataParallel(self.heads) if self.process.distributed else self.heads

    # -- steps ------------------------------------------------------------------------

    def _losses(self, images: list[Tensor], targets: list[dict]) -> dict[str, Tensor]:
        if self.stage != "mask":
            return self.forward_model(images, targets)
        model, roi_heads = self.model, self.model.roi_heads
        with torch.no_grad():
            image_list, targets = model.transform(images, targets)
            features = model.backbone(image_list.tensors)
            proposals, _ = model.rpn(image_list, features)
            proposals, matched, labels, _ = roi_heads.select_training_samples(proposals, targets)
            inputs = {}
            for name, mask_labels in self.head_mask_labels.items():
                head_targets = [{**t, "has_mask": mask_labels[t["labels"]]} for t in targets]
                inputs[name] = roi_heads.mask_training_inputs(
                    features, proposals, matched, labels, head_targets, image_list.image_sizes)
        return self.forward_heads(inputs, roi_heads.box_predictor)

    # -- checkpoints ------------------------------------------------------------------

    def _state(self, finished: bool) -> dict:
        rng = distributed.gather_objects(self.process, torch.get_rng_state())
        state = {
            "config": to_dict(self.resolved),
            "categories": self.categories,
            "split": self.config.data.split,
            "iteration": self.iteration,
            "finished": finished,
            "schedule": dataclasses.asdict(self.schedule),
            "optimizer": self.optimizer.state_dict(),
            "stream": dataclasses.asdict(self.stream.position),
            "rng": rng,
        }
        if self.stage == "mask":
            detector = {k: v for k, v in self.model.state_dict().items() if not k.startswith("roi_heads.mask_branch.")}
            state.update(model_config=to_dict(replace(self.model_config, mask_on=False)), model=detector, heads={
                name: {"predictor": to_dict(self.head_configs()[name].predictor),
                       "split": self.head_configs()[name].split or self.config.data.split,
                       "mask_category_ids": self.head_mask_category_ids[name],
                       "state": branch.state_dict()}
                for name, branch in self.heads.branches.items()})
        else:
            state.update(model_config=to_dict(self.model_config), model=self.model.state_dict(),
                         mask_category_ids=self.mask_category_ids)
        return state

    def _save(self, path: Path, finished: bool = False) -> Path:
        state = self._state(finished)  # every process takes part (RNG states are gathered)
        if self.process.is_main:
            save_atomic(state, path)
            if path.name != FINAL_NAME:
                rotate(self.out_dir, self.config.train.keep_checkpoints)
        distributed.barrier(self.process)
        return path

    def _restore(self, path: Path) -> None:
        state = load_checkpoint(path, map_location=self.process.device)
        saved = _flatten(state.get("config", {}))
        current = _flatten(to_dict(self.resolved))
        changed = sorted(k for k in set(saved) | set(current)
                         if saved.get(k) != current.get(k) and k not in RESUMABLE_CHANGES)
        if changed:
            raise ValueError(f"{path}: the run was started with another configuration; differing keys: "
                             f"{', '.join(changed[:8])}{'...' if len(changed) > 8 else ''}")
        try:
            if self.stage == "mask":
                for name, branch in self.heads.branches.items():
                    branch.load_state_dict(state["heads"][name]["state"])
            else:
                self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.iteration = int(state["iteration"])
            self.stream.position = StreamPosition(**state["stream"])
            rng = state["rng"]
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: cannot resume from it ({str(exc).splitlines()[0]})") from None
        if len(rng) == self.process.world_size:
            torch.set_rng_state(rng[self.process.rank].cpu())
        elif self.process.is_main:
            print(f"resuming with {self.process.world_size} processes from a run of {len(rng)}: "
                  "the random state is not carried over")

    # -- the loop ---------------------------------------------------------------------

    def train(self) -> TrainResult:
        process, schedule = self.process, self.schedule
        if process.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_yaml(to_dict(self.resolved), self.out_dir / CONFIG_NAME)
            metrics = MetricsFile(self.out_dir / METRICS_NAME,
                                  resume_iteration=self.iteration if self.resume_from else None)
        distributed.barrier(process)
        from tqdm import tqdm

        bar = tqdm(total=schedule.iterations, initial=self.iteration, disable=not (self.progress and process.is_main),
                   desc=f"train {self.stage}", dynamic_ncols=True, mininterval=1.0, smoothing=0.1)
        smoothed = SmoothedValues(window=self.config.train.log_period)
        started = time.perf_counter()
        start_iteration = self.iteration
        batches = iter(self.stream)
        interrupted = None
        with _StopSignals() as signals:
            while self.iteration < schedule.iterations:
                step_start = time.perf_counter()
                images, targets = next(batches)
                images = [image.to(process.device, non_blocking=True) for image in images]
                targets = _to_device(targets, process.device)
                data_time = time.perf_counter() - step_start
                lr = schedule.learning_rate(self.iteration)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                losses = self._losses(images, targets)
                total = sum(losses.values())
                if not math.isfinite(total.item()):
                    raise TrainingDiverged(
                        f"the loss became {total.item()} at iteration {self.iteration} (learning rate {lr:.4g}); "
                        f"terms: {', '.join(f'{k} {v.item():.4g}' for k, v in losses.items())}")
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                if self.config.solver.clip_grad_norm:
                    torch.nn.utils.clip_grad_norm_(self.trainable.parameters(), self.config.solver.clip_grad_norm)
                self.optimizer.step()
                self.iteration += 1
                values = {"loss": total.item(), **{k: v.item() for k, v in losses.items()},
                          "time": time.perf_counter() - step_start, "data_time": data_time}
                smoothed.update(values)
                bar.update(1)
                if process.is_main:
                    medians = smoothed.medians()
                    bar.set_postfix({k.replace("loss_", ""): f"{v:.3f}" for k, v in medians.items()
                                     if k.startswith("loss")}, refresh=False)
                    if self.iteration % self.config.train.log_period == 0 or self.iteration == schedule.iterations:
                        metrics.write({"iteration": self.iteration, "lr": lr, **medians})
                stop = distributed.any_process(process, signals.signum is not None)
                if stop:
                    # A signal may have reached another process only.
                    interrupted = signals.signum or signal.SIGTERM
                if stop or self.iteration % self.config.train.checkpoint_period == 0:
                    if self.iteration < schedule.iterations:
                        self._save(periodic_path(self.out_dir, self.iteration))
                if stop:
                    break
        bar.close()
        seconds = time.perf_counter() - started
        if interrupted is not None and self.iteration < schedule.iterations:
            checkpoint = periodic_path(self.out_dir, self.iteration)
        else:
            interrupted = None
            checkpoint = self._save(self.out_dir / FINAL_NAME, finished=True)
            if process.is_main:
                plot_losses(read_metrics(self.out_dir / METRICS_NAME), self.out_dir / LOSS_CURVE_NAME,
                            title=f"{self.out_dir.name} ({self.stage})")
        if process.is_main and self.iteration > start_iteration:
            rate = (self.iteration - start_iteration) / seconds
            print(f"{self.iteration - start_iteration} iterations in {seconds:.0f} s ({rate:.2f} it/s); "
                  f"checkpoint {checkpoint}")
        return TrainResult(self.out_dir, checkpoint, self.iteration, seconds, interrupted)


def train(config: RunConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Run (or resume) a training run; see the module docstring."""
    trainer = Trainer(config, out_dir, resume=resume, progress=progress)
    try:
        return trainer.train()
    finally:
        distributed.stop()
