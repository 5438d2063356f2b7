"""BDH (the Dragon Hatchling, BDH-GPU): model, inspection of its neurons and synapses, merging, conversion
from the official code.

>>> from engramlab.bdh import BDH, BDHConfig, trace_density
>>> model = BDH(BDHConfig())
>>> logits, trace = model.forward_trace(idx)   # per-layer x / y activations
>>> trace_density(trace)                       # their fraction of non-zero entries

The neuron-graph analysis (``threshold_graph``, ``graph_report``, ``fit_power_law``) is imported on
first use (it needs networkx); the concept probe is ``engramlab.bdh.probe.probe``.
"""

from engramlab.bdh.convert import from_reference
from engramlab.bdh.inspect import (
    density,
    firing_rates,
    inspect_model,
    neuron_browser_html,
    position_operator,
    repetition_density,
    synapse_matrix,
    synapse_trajectory,
    top_contexts,
    top_synapses,
    trace_density,
)
from engramlab.bdh.merge import merge_models, merge_runs
from engramlab.bdh.model import BDH, BDHConfig

_LAZY = {
    "threshold_graph": "engramlab.bdh.graph",
    "graph_report": "engramlab.bdh.graph",
    "fit_power_law": "engramlab.bdh.graph",
}

__all__ = [
    "BDH",
    "BDHConfig",
    "density",
    "firing_rates",
    "fit_power_law",
    "from_reference",
    "graph_report",
    "inspect_model",
    "merge_models",
    "merge_runs",
    "neuron_browser_html",
    "position_operator",
    "repetition_density",
    "synapse_matrix",
    "synapse_trajectory",
    "threshold_graph",
    "top_contexts",
    "top_synapses",
    "trace_density",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engramlab.bdh' has no attribute {name!r}")
