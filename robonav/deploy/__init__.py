"""robonav.deploy: the way to the robot. ONNX export, parity, FP16/INT8 quantization, the TensorRT op list.

Floor 4 (docs/design.md): uses policy (torch, inside the functions that need it), eval, runtime and sim. Modules, one
role each:

- ``export``    `export_onnx(checkpoint, out)`: the step model, its sidecar ``<out>.json`` and weights ``<out>.npz``
- ``parity``    recorded episodes, step-by-step parity against torch, closed-loop flips (`export_parity`, `judge`)
- ``quantize``  `quantize_fp16`, `quantize_int8` (QDQ, calibrated on validation rollouts of the model itself)
- ``trt_ops``   what TensorRT 10.3's ONNX parser accepts (`check_trt_compatible`) and the INT8 QDQ form (`qdq_issues`)

The commands are ``robonav export`` and ``robonav quantize`` (robonav.cli); ``robonav eval --policy X.onnx`` runs
any of these models through the same evaluation as a checkpoint.
"""
