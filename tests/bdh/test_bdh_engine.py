"""BDH with the shared training engine: state carried across windows, checkpoint round trip."""

import torch

from engramlab.bdh.model import BDH, BDHConfig
from engramlab.train.checkpoint import load_checkpoint
from engramlab.train.config import TrainConfig
from engramlab.train.engine import Trainer
from engramlab.train.registry import get_model_spec


def test_registry_and_engine_with_state_carry(tmp_path):
    spec = get_model_spec("bdh")
    assert spec.model_cls is BDH and spec.config_cls is BDHConfig
    corpus = tmp_path / "text.txt"
    corpus.write_bytes(b"to be or not to be, that is the question. " * 40)
    torch.manual_seed(0)
    model = BDH(
        BDHConfig(
            n_layer=2,
            n_embd=16,
            n_head=2,
            mlp_internal_dim_multiplier=4,
            dropout=0.0,
            pos="rope+alibi",
            variant="prime",
            chunk_size=8,
        )
    )
    cfg = TrainConfig(
        data=str(corpus),
        steps=4,
        batch_size=2,
        block_size=16,
        lr=3e-3,
        warmup_steps=1,
        eval_interval=4,
        eval_batches=1,
        log_interval=2,
        carry_state=True,
    )
    res = Trainer(model, cfg, tmp_path / "run", "bdh", progress=False, device="cpu").fit()
    assert res["step"] == 4
    again, name, tcfg, step = load_checkpoint(tmp_path / "run")
    assert name == "bdh" and step == 4 and tcfg.carry_state
    idx = torch.randint(0, 256, (1, 9))
    model.eval()
    torch.testing.assert_close(again(idx)[0], model(idx)[0])
