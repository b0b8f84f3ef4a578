"""Canary for the TensorRT type check: mypy must REJECT this file (.ci/run asserts that it does).

If mypy accepts it, the stubs in typings/ are not on mypy's path (or lost their types) and the TensorRT code
in robonav.deploy.build and robonav.runtime.backends.trt_backend is no longer checked. It sits in tools/ beside
prepare_trt_stubs.py, which prepares those stubs; pytest never collects it (outside tests/, not named test_*).
"""

from __future__ import annotations

import tensorrt as trt


def build(network: trt.INetworkDefinition) -> None:
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    config = builder.create_builder_config()
    config.set_flagz(trt.BuilderFlag.FP16)  # misspelled on purpose: set_flag
    builder.build_serialized_networkk(network, config)  # misspelled on purpose: build_serialized_network
