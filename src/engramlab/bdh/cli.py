"""``engramlab bdh ...``: inspect, probe and merge trained BDH checkpoints.

engramlab bdh inspect RUN_DIR --text FILE --out DIR
engramlab bdh probe RUN_DIR --concept A.txt --contrast B.txt [--out FILE]
engramlab bdh merge A B --out C
engramlab bdh merge-demo BASE --corpus-a A.txt --corpus-b B.txt --out DIR
"""

from __future__ import annotations

import json
from pathlib import Path

from engramlab.cli_common import add_common_arguments, check_output_file, check_output_folder, output_folder


def _load_bdh(run_dir: str):
    from engramlab.train.checkpoint import load_checkpoint

    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {run_dir}")
    model, name, _, step = load_checkpoint(run_dir)
    if name != "bdh":
        raise ValueError(f"{run_dir} holds a {name!r} model; these commands read BDH checkpoints")
    return model.float().eval(), step


def _read_text(path: str, max_bytes: int) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"text file not found: {p}")
    if max_bytes < 2:
        raise ValueError(f"--max-bytes must be at least 2, got {max_bytes}")
    with open(p, "rb") as f:
        data = f.read(max_bytes)
    if len(data) < 2:
        raise ValueError(f"text file {p} has {len(data)} bytes; need at least 2")
    return data


def _triple(text: str, flag: str) -> tuple[int, int, int]:
    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        return int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected three integers A:B:C") from None


def _inspect(a) -> None:
    from engramlab.bdh.inspect import inspect_model

    check_output_folder(a.out, a.overwrite)
    text = _read_text(a.text, a.max_bytes)
    if a.edges_per_neuron < 1:
        raise ValueError(f"--edges-per-neuron must be >= 1, got {a.edges_per_neuron}")
    model, step = _load_bdh(a.run_dir)
    with output_folder(a.out, a.overwrite):
        res = inspect_model(
            model,
            text,
            a.out,
            neurons_per_layer=a.neurons,
            contexts=a.contexts,
            top_k=a.top_k,
            edges_per_neuron=a.edges_per_neuron,
            repeat_period=a.repeat_period,
            repeats=a.repeats,
            title=f"BDH {Path(a.run_dir).name} (step {step})",
            progress=not a.no_progress,
            neurons=[_triple(t, "--neuron") for t in a.neuron or []],
            synapses=[_triple(t, "--synapse") for t in a.synapse or []],
        )
    d = res["density"]
    print(
        json.dumps(
            {
                "out": str(a.out),
                "density_x_per_layer": d["x"],
                "density_y_per_layer": d["y"],
                "modularity_G_x_per_head": [g["modularity"] for g in res["graphs"]["G_x"]],
                "files": sorted(p.name for p in Path(a.out).iterdir() if not p.name.startswith(".")),
            },
            indent=2,
        )
    )


def _probe(a) -> None:
    from engramlab.bdh.probe import probe, read_sentences

    if a.out:
        check_output_file(a.out, a.overwrite)
    concept, contrast = read_sentences(a.concept), read_sentences(a.contrast)
    model, _ = _load_bdh(a.run_dir)
    res = probe(
        model,
        concept,
        contrast,
        candidates=a.candidates,
        report=a.report,
        per_byte=not a.raw,
        positive=not a.any_sign,
        progress=not a.no_progress,
    )
    from engramlab.io import atomic_write_text, dumps_json

    text = dumps_json(res)
    if a.out:
        atomic_write_text(a.out, text)
    print(text, end="")


def _merge(a) -> None:
    from engramlab.bdh.merge import merge_runs

    out = check_output_folder(a.out, a.overwrite)
    empty = out.is_dir() and not any(out.iterdir())
    out = merge_runs(a.run_a, a.run_b, out, overwrite=a.overwrite or empty)
    print(json.dumps({"merged": str(out)}))


def _merge_demo(a) -> None:
    from engramlab.bdh.merge import merge_demo, merge_table_markdown

    check_output_folder(a.out, a.overwrite, a.resume, resume_flag="--resume")
    for p in (a.corpus_a, a.corpus_b):
        if not Path(p).exists():
            raise FileNotFoundError(f"corpus not found: {p}")
    overrides = {}
    if a.batch_size is not None:
        overrides["batch_size"] = a.batch_size
    with output_folder(a.out, a.overwrite, resume=a.resume, resume_flag="--resume"):
        res = merge_demo(
            a.base,
            a.corpus_a,
            a.corpus_b,
            a.out,
            steps=a.steps,
            lr=a.lr,
            eval_bytes=a.eval_bytes,
            progress=not a.no_progress,
            **overrides,
        )
    print(merge_table_markdown(res))


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser("bdh", help="inspect, probe and merge BDH checkpoints")
    sub = p.add_subparsers(dest="bdh_command", metavar="ACTION", required=True)

    q = sub.add_parser("inspect", help="density, neuron browser, synapses and neuron graph of a run")
    q.add_argument("run_dir", help="a BDH run folder written by `engramlab train bdh`")
    q.add_argument("--text", required=True, help="text file to read (its first --max-bytes bytes)")
    q.add_argument("--max-bytes", type=int, default=4096, help="bytes of --text to read")
    q.add_argument("--neurons", type=int, default=6, help="neurons per layer in the browser")
    q.add_argument("--contexts", type=int, default=8, help="contexts per neuron")
    q.add_argument("--top-k", type=int, default=20, help="strongest synapses per layer")
    q.add_argument("--edges-per-neuron", type=int, default=8, help="graph threshold: keep N*this edges per head")
    q.add_argument("--repeat-period", type=int, default=128, help="bytes of the repeated pattern (Fig. 14)")
    q.add_argument("--repeats", type=int, default=4, help="repetitions of that pattern")
    q.add_argument("--neuron", action="append", metavar="LAYER:HEAD:K", help="also show this neuron (repeatable)")
    q.add_argument(
        "--synapse",
        action="append",
        metavar="LAYER:I:J",
        help="also follow sigma(i, j) of this layer over the text (global neuron ids; repeatable)",
    )
    add_common_arguments(q, out="folder for inspect.json, PNG figures and neurons.html", threads=True, progress=True)
    q.set_defaults(func=_inspect)

    q = sub.add_parser("probe", help="synapses that separate concept sentences from contrast sentences")
    q.add_argument("run_dir", help="a BDH run folder written by `engramlab train bdh`")
    q.add_argument("--concept", required=True, help="file with one concept sentence per line")
    q.add_argument("--contrast", required=True, help="file with one contrast sentence per line")
    q.add_argument("--candidates", type=int, default=200, help="candidate synapses per layer")
    q.add_argument("--report", type=int, default=10, help="synapses to report")
    q.add_argument("--raw", action="store_true", help="raw Eq. 16 sigma instead of sigma per byte")
    q.add_argument(
        "--any-sign",
        action="store_true",
        help="also consider synapses whose mean on the concept sentences is not positive",
    )
    q.add_argument("--out", default=None, metavar="FILE", help="also write the JSON to this file")
    q.add_argument("--overwrite", action="store_true", help="replace the --out file if it exists")
    add_common_arguments(q, threads=True, progress=True)
    q.set_defaults(func=_probe)

    q = sub.add_parser("merge", help="merge two BDH runs by concatenating neurons (paper §7.1)")
    q.add_argument("run_a", help="first BDH run folder")
    q.add_argument("run_b", help="second BDH run folder (same config apart from the neurons)")
    add_common_arguments(q, out="new checkpoint folder")
    q.set_defaults(func=_merge)

    q = sub.add_parser("merge-demo", help="fine-tune a base run on two corpora, merge, compare losses")
    q.add_argument("base", help="the BDH run folder both fine-tunings start from")
    q.add_argument("--corpus-a", required=True, help="text file or folder of the first fine-tuning")
    q.add_argument("--corpus-b", required=True, help="text file or folder of the second fine-tuning")
    q.add_argument(
        "--resume", action="store_true", help="continue in --out: reuse its finished fine-tunings, redo the others"
    )
    q.add_argument("--steps", type=int, default=100, help="fine-tuning steps per corpus")
    q.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (default: the base run's)")
    q.add_argument("--batch-size", type=int, default=None, help="fine-tuning batch size (default: the base run's)")
    q.add_argument("--eval-bytes", type=int, default=65536, help="validation bytes per corpus and model")
    add_common_arguments(
        q, out="folder for tuned_a/, tuned_b/, merged/, merge_demo.json and merge_demo.png", threads=True, progress=True
    )
    q.set_defaults(func=_merge_demo)
