"""Run under torchrun by test_training: trains a tiny recipe with DistributedDataParallel
and saves every rank's parameters, so the test can check they stay identical."""

import json
import sys
from pathlib import Path

import torch

from maskx.engine import distributed
from maskx.engine.config import load_run_config
from maskx.engine.trainer import Trainer


def main(recipe: str, out_dir: str) -> None:
    trainer = Trainer(load_run_config(recipe), out_dir, progress=False)
    rank = trainer.process.rank
    out = Path(out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.clone() for k, v in trainer.model.state_dict().items()}, out / "rank0_initial.pt")
    first_batch = trainer.stream._epoch_keys(0)[0]
    trainer.train()
    torch.save(trainer.model.state_dict(), out / f"rank{rank}.pt")
    batches = distributed.gather_objects(trainer.process, [index for index, _ in first_batch])
    if rank == 0:
        (out / "probe.json").write_text(json.dumps({
            "effective_batch_size": trainer.schedule.effective_batch_size,
            "batches_differ": batches[0] != batches[1],
        }))
    distributed.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
