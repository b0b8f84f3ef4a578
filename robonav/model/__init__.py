"""robonav.model: the typed contract of a trained policy, one floor above robonav.sensors.

What it is for: what every reader of a model (checkpoint, export, quantize, build, the runtime's backends, the loop,
eval and HIL) agrees on, each fact read and written in one place:

- ``meta``     `PolicyMeta`: observation layout (an ObservationSpec, or None for the 'plain' observer), action
               limits, control period, head kind, recurrent state shape, precision, hashes; its to_dict/from_dict
- ``heads``    `HEADS`, `head_kind`: the heads a weights file may end in and the names of their arrays
- ``sidecar``  `ModelSidecar` (a PolicyMeta plus its model file's facts), ``<model>.json`` read and written
               atomically, and the checks a runtime runs (file and weights hashes, I/O, embedded metadata)

It may import robonav.sensors (ObservationSpec, only where a spec is built: it loads numba), robonav.errors,
robonav.atomic, numpy and the standard library; never torch, onnx or an engine.
"""
