import json
import os
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_process_ddp_matches_single_process_on_combined_batch(tmp_path, shakespeare_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    ddp.mkdir()
    single.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(WORKER),
        str(ddp),
        str(shakespeare_path),
        "4",
    ]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(
        [sys.executable, str(WORKER), str(single), str(shakespeare_path), "8"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    r0, r1, one = (torch.load(p) for p in (ddp / "rank0.pt", ddp / "rank1.pt", single / "rank0.pt"))
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks out of sync on {k}"  # DDP keeps replicas identical
        torch.testing.assert_close(r0[k], one[k], rtol=1e-4, atol=1e-5)
    # and the weights moved: the comparison is not between two untrained models
    init = torch.load(single / "init0.pt")
    assert max(float((init[k] - v).abs().max()) for k, v in r0.items()) > 1e-3
    rows_ddp = [json.loads(x) for x in (ddp / "run" / "metrics.jsonl").read_text().splitlines()]
    rows_one = [json.loads(x) for x in (single / "run" / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(rows_ddp, rows_one, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4
