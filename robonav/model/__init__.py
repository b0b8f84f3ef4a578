"""robonav.model: the typed contract of a trained policy, one floor above robonav.sensors.

What it is for: what every reader of a model (checkpoint, export, quantize, build, the runtime's backends, eval,
HIL) agrees on: `PolicyMeta` (``meta``), the heads and their weight arrays (``heads``), and the sidecar
``<model>.json`` with its checks (``sidecar``). It may import robonav.sensors (ObservationSpec), robonav.errors,
robonav.atomic, numpy and the standard library; never torch, onnx or an engine.
"""
