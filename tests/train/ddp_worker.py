"""Run by test_ddp.py under torchrun (or alone): train a tiny GPT, save each rank's weights."""

import sys
from pathlib import Path

import torch

from engramlab.baselines.gpt import GPT, GPTConfig
from engramlab.data.text import load_corpus
from engramlab.train.config import TrainConfig
from engramlab.train.engine import Trainer

if __name__ == "__main__":
    out, corpus_path, batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16))
    cfg = TrainConfig(
        data=corpus_path,
        steps=6,
        batch_size=batch,
        block_size=16,
        lr=3e-3,
        warmup_steps=2,
        eval_interval=3,
        eval_batches=1,
        log_interval=1,
        seed=3,
    )
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, cfg, out / "run", "gpt", corpus=load_corpus(corpus_path), device="cpu", progress=False)
    trainer.fit()
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / f"rank{trainer.rank}.pt")
    torch.save(init, out / f"init{trainer.rank}.pt")
    if trainer.ddp:
        torch.distributed.destroy_process_group()
