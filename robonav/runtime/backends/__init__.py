"""robonav.runtime.backends: inference engines behind one lifecycle (open / reset / step(obs) -> action / close).

What it is for: the protocol and input checks (``base``), the registry by name (``registry``: `open_backend`), and
the four engines: ONNX Runtime (``onnx_backend``), Numba (``numba_backend`` with ``numba_kernels``), PyTorch
(``torch_backend``) and TensorRT (``trt_backend`` with its CUDA binding ``cuda``). It may import numpy, numba,
robonav.model and robonav.sensors; an engine (onnxruntime, torch, TensorRT) is imported only when a backend opens.
"""
