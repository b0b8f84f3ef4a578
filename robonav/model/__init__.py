"""robonav.model: the typed contract of a trained policy, one floor above robonav.sensors.

What it is for: what every reader of a model (checkpoint, export, quantize, build, the runtime's backends, eval,
HIL) agrees on: the sidecar ``<model>.json`` and its checks (``sidecar``). It may import robonav.sensors
(ObservationSpec) and robonav.errors, numpy and the standard library; never torch, onnx or an engine.
"""
