"""AstroSNN against GPT (preallocated KV cache) and LSTM: training, prefill and generation tokens/s with peak
memory at contexts 256 ... 16,384, firing rates per layer and synaptic operations per token.

Each (model, context) runs in a fresh one-thread process, so its peak memory is that process's resident-set
growth. Without model folders the three models are built fresh at the language table's sizes (AstroSNN
2 x 64 with 4 astrocytes x 16, GPT 3 x 52 with rotary positions, LSTM 1 x 116; about 108k parameters each) and
the firing rates are those of the untrained AstroSNN. With ``--astro/--gpt/--lstm`` (model folders, e.g. the
``run`` folders of the astro ``lm-*`` units) the trained weights are measured, and ``--rates`` lists the
trained AstroSNN folders whose firing rates give the synaptic operations. The load average before and after
is recorded (on a shared machine the timings are not an idle machine's).

    OMP_NUM_THREADS=1 python benchmarks/astro_efficiency.py --out /tmp/astro_efficiency.json
    OMP_NUM_THREADS=1 python benchmarks/astro_efficiency.py --contexts 256,1024 --gen-tokens 16 --train-tokens 2048
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _ints(text: str, flag: str, p) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        p.error(f"{flag} takes comma-separated positive integers, got {text!r}")
    if not vals or min(vals) < 1:
        p.error(f"{flag} takes comma-separated positive integers, got {text!r}")
    return vals


def main(argv=None) -> dict:
    from engramlab import io
    from engramlab.astro.efficiency import run_benchmark
    from engramlab.report.papers import astro as A

    full = A.BUDGETS["full"]["efficiency"]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--contexts", default=",".join(map(str, full["contexts"])))
    p.add_argument("--train-max-context", type=int, default=full["train_max_context"])
    p.add_argument("--gen-tokens", type=int, default=full["gen_tokens"])
    p.add_argument("--train-tokens", type=int, default=full["train_tokens"])
    p.add_argument("--repeats", type=int, default=full["repeats"])
    p.add_argument("--astro", default=None, help="trained AstroSNN model folder")
    p.add_argument("--gpt", default=None, help="trained GPT model folder (rotary positions)")
    p.add_argument("--lstm", default=None, help="trained LSTM model folder")
    p.add_argument("--rates", default=None, help="comma-separated AstroSNN folders for the firing rates")
    p.add_argument("--out", default=None, help="write the JSON here too")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)
    contexts = _ints(args.contexts, "--contexts", p)
    for flag in ("train_max_context", "gen_tokens", "train_tokens", "repeats"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.out and Path(args.out).exists() and not args.overwrite:
        p.error(f"--out {args.out} exists; add --overwrite to replace it")
    lm = A.BUDGETS["full"]["lm"]
    specs = {}
    for kind, folder in (("astro", args.astro), ("gpt", args.gpt), ("lstm", args.lstm)):
        name = A.EFF_NAMES[f"lm-{kind}"]
        if folder:
            if not Path(folder).is_dir():
                p.error(f"--{kind} {folder} is not a folder")
            specs[name] = {"folder": folder}
        else:
            engine, sets = A.lm_model(lm, kind)
            specs[name] = {"name": engine, "sets": sets}
    rates = [x for x in (args.rates or args.astro or "").split(",") if x]
    for r in rates:
        if not Path(r).is_dir():
            p.error(f"--rates: {r} is not a folder")
    rate_models = {r: r for r in rates}
    if not rate_models:  # the untrained AstroSNN: save it once so that the same code path loads it
        import tempfile

        from engramlab.astro.efficiency import build_model

        tmp = Path(tempfile.mkdtemp(prefix="astro-eff-"))
        build_model(specs[A.EFF_NAMES["lm-astro"]]).save_pretrained(tmp / "astro")
        rate_models = {"untrained AstroSNN": str(tmp / "astro")}
    res = run_benchmark(
        specs,
        rate_models,
        contexts=contexts,
        gen_tokens=args.gen_tokens,
        train_tokens=args.train_tokens,
        repeats=args.repeats,
        train_max_context=args.train_max_context,
        isolate=True,
        rate_windows=full["rate_windows"],
        rate_block=full["rate_block"],
        log=print,
    )
    text = json.dumps(io.to_jsonable(res), indent=2)
    print(text)
    if args.out:
        io.write_json(args.out, res)
    return res


if __name__ == "__main__":
    main()
