"""The shipped policies (PPO's `default`, R2D2's `default-q`) export to ONNX and ONNX Runtime matches their
PyTorch step form: over recorded validation episodes through their resets, and over one stream of more than
1,000 steps with the LSTM state carried through all of it (no reset: the longest horizon the state sees)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from robonav.data import resource
from robonav.deploy.export import export_onnx
from robonav.deploy.parity import Recording, record_steps, sim_config, step_parity
from robonav.policy.agent import TorchAgent, load_policy
from robonav.policy.q_network import QNetwork


@pytest.mark.parametrize("name", ["default", "default-q"])
def test_shipped_policy_exports_and_onnx_runtime_matches_its_torch_step(name, tmp_path):
    checkpoint = resource("policies", f"{name}.pt")
    done = export_onnx(checkpoint, tmp_path / f"{name}.onnx")
    policy, _ = load_policy(checkpoint)
    assert isinstance(policy, QNetwork) == (name == "default-q")
    recording = record_steps(lambda n: TorchAgent(policy, n), sim_config(done.meta), 1000, "val-5x5", 0, 4)
    report = step_parity(policy, done.onnx, recording)
    print(f"{name}: max |action error| {report.max_abs_error:.3g} over {report.steps} steps, {report.episodes} "
          "episodes")
    assert report.steps >= 1000 and report.episodes >= 2 and report.passed
    # One stream without resets: the state runs through every recorded tick, more than 1,000 of them.
    stream = Recording([np.concatenate(recording.segments)], recording.results[:1])
    long = step_parity(policy, done.onnx, stream)
    assert long.steps >= 1000 and long.episodes == 1 and long.passed
    if name == "default-q":  # a greedy primitive: the same primitive, so the very same (v, omega)
        assert long.max_abs_error == 0.0 and report.max_abs_error == 0.0
    assert graph_facts(done.onnx) == graph_facts(resource("policies", f"{name}.onnx"))  # export is unchanged
    with np.load(done.weights) as fresh, np.load(resource("policies", f"{name}.npz")) as shipped:
        assert sorted(fresh.files) == sorted(shipped.files)
        for key in fresh.files:
            np.testing.assert_array_equal(fresh[key], shipped[key], err_msg=key)


def graph_facts(path) -> dict:
    """What must not change between two exports of one checkpoint: every node, every initializer, the graph's I/O
    and the metadata (serialised, so a changed attribute, weight or name shows). Only the exporter's per-node
    Python stack trace is left out: it names the source files' folder, which differs between checkouts."""
    proto = onnx.load(str(path))
    g = proto.graph
    return {"nodes": [_without_stack_trace(n) for n in g.node],
            "initializers": {i.name: i.SerializeToString() for i in g.initializer},
            "io": [v.SerializeToString() for v in [*g.input, *g.output]],
            "metadata": {p.key: p.value for p in proto.metadata_props},
            "opset": [(o.domain, o.version) for o in proto.opset_import], "ir_version": proto.ir_version,
            "producer": (proto.producer_name, proto.producer_version), "doc_string": proto.doc_string}


def _without_stack_trace(node) -> bytes:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    keep = [p for p in copy.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
    del copy.metadata_props[:]
    copy.metadata_props.extend(keep)
    return copy.SerializeToString()
