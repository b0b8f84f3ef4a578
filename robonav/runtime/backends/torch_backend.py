"""The PyTorch backend: the step rebuilt from ``<model>.npz`` (no checkpoint on the robot), on the CPU or on CUDA
with two captured CUDA graphs.

A robot carries the model file, its sidecar and the weights, never a training checkpoint, so `step_module` builds
a small ``nn.Module`` that mirrors ``ActorCritic.step`` (normaliser, encoder with ELU, LSTM as matmuls plus gates,
clamp, scale) or ``QNetwork.step`` (the same, then argmax over the primitives); robonav.runtime.backends.numba_kernels
states the arithmetic, from the same arrays the Numba backend reads.

On CUDA (``cuda_graph=True``) everything the step touches is a static buffer: a pinned host obs and action, their
device twins, and two state sets (h, c) on the device. Each step is three calls on one stream, then one sync:

    obs (pinned) -> device      graph[parity].replay()      action (device) -> pinned      sync

Only the observation goes to the device and only the action comes back; h and c never leave the GPU. The state
ping-pongs between the two sets with two graphs: graph 0 reads set 0 and writes set 1, graph 1 the reverse. Why two
graphs and not one graph with re-pointed inputs: a captured graph holds the raw device addresses its kernels were
launched with. Swapping which tensor plays "state in" after capture (or, in TensorRT, calling
``set_tensor_address``) changes nothing the graph does: it replays reading and writing the addresses it was
captured with. (One graph plus an on-device copy h_out -> h_in at its end also works; it costs a copy per step.)
``reset()`` zeroes both sets on the device and starts again at graph 0.

torch is imported when a backend opens, never at import time (robonav.runtime's import floor).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from robonav.errors import UserError
from robonav.model.heads import HEADS, head_kind
from robonav.model.sidecar import ModelSidecar, read_sidecar
from robonav.runtime.backends.base import Backend, BackendError
from robonav.runtime.backends.numba_backend import load_model_weights

__all__ = ["TOLERANCE", "TorchBackend", "TorchUnavailableError", "step_module"]

TOLERANCE = 1e-5
"""Max |action| error (SI units) against ONNX Runtime's FP32 model over recorded episodes, CPU and CUDA (TF32
is switched off while the CUDA backend is captured, so matmuls stay FP32)."""


class TorchUnavailableError(UserError, BackendError):
    """The device asked for is not available to this torch (no CUDA build, no GPU visible)."""


def step_module(arrays: dict[str, np.ndarray]) -> Any:
    """A ``torch.nn.Module`` whose ``forward(obs [1, D], h, c [L, 1, H]) -> (action [1, A], h', c')`` is the
    policy step of the exported weights ``arrays`` (robonav.deploy.export.write_weights), on the CPU, eval mode."""
    import torch
    from torch import nn

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(arrays[name], dtype=np.float32))

    class PolicyStep(nn.Module):
        """ActorCritic.step (or QNetwork.step) rebuilt from exported weights; a separate critic's state rows pass
        through."""

        obs_mean: torch.Tensor
        obs_std: torch.Tensor
        table: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("obs_mean", tensor("obs_mean"))
            self.register_buffer("obs_std", tensor("obs_std"))
            head = head_kind(arrays)
            self.argmax = head == "argmax"
            w, b, table = HEADS[head]
            self.register_buffer("table", tensor(table))
            self.clip = float(arrays["obs_clip"])
            self.recurrent = str(arrays["core"]) == "lstm"
            self.actor_layers = int(arrays["actor_layers"])
            self.encoder = nn.ModuleList()
            k = 0
            while f"encoder_w{k}" in arrays:
                self.encoder.append(self._linear(f"encoder_w{k}", f"encoder_b{k}"))
                k += 1
            self.w_ih = nn.ParameterList()
            self.w_hh = nn.ParameterList()
            self.b = nn.ParameterList()
            if self.recurrent:
                for layer in range(self.actor_layers):
                    self.w_ih.append(nn.Parameter(tensor(f"lstm_w_ih{layer}").t().contiguous(), requires_grad=False))
                    self.w_hh.append(nn.Parameter(tensor(f"lstm_w_hh{layer}").t().contiguous(), requires_grad=False))
                    self.b.append(nn.Parameter(tensor(f"lstm_b{layer}"), requires_grad=False))
            else:
                self.core = self._linear("core_w", "core_b")
            self.mu = self._linear(w, b)

        @staticmethod
        def _linear(w: str, b: str) -> nn.Linear:
            weight = tensor(w)
            lin = nn.Linear(weight.shape[1], weight.shape[0])
            with torch.no_grad():
                lin.weight.copy_(weight)
                lin.bias.copy_(tensor(b))
            lin.requires_grad_(False)
            return lin

        def forward(self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            x = ((obs - self.obs_mean) / self.obs_std).clamp(-self.clip, self.clip)
            for lin in self.encoder:
                x = torch.nn.functional.elu(lin(x))
            if not self.recurrent:
                return self._head(torch.tanh(self.core(x))), h, c
            n = self.actor_layers
            hs, cs = [], []
            for layer in range(n):
                gates = torch.addmm(self.b[layer], x, self.w_ih[layer]).addmm_(h[layer], self.w_hh[layer])
                i, f, g, o = gates.chunk(4, dim=-1)
                c_new = torch.sigmoid(f) * c[layer] + torch.sigmoid(i) * torch.tanh(g)
                x = torch.sigmoid(o) * torch.tanh(c_new)
                hs.append(x)
                cs.append(c_new)
            return self._head(x), torch.cat([torch.stack(hs), h[n:]]), torch.cat([torch.stack(cs), c[n:]])

        def _head(self, x: torch.Tensor) -> torch.Tensor:
            if self.argmax:  # a Q network: the best-scored primitive (first on ties), gathered on the device
                return self.table.index_select(0, torch.argmax(self.mu(x), dim=-1))
            return self.mu(x).clamp(-1.0, 1.0) * self.table

    return PolicyStep().eval()


class TorchBackend(Backend):
    """The FP32 step in PyTorch for one robot: CPU, or CUDA with static buffers and two captured graphs.

    ``device``: 'cpu', 'cuda' or 'cuda:N' ('cuda:N' makes N torch's current device: one robot, one GPU).
    ``cuda_graph``: on CUDA, capture the step (else eager on the device, state still kept there). On the CPU
    torch runs on its global thread count: call ``torch.set_num_threads(1)`` for one core.
    """

    def __init__(self, model: str | os.PathLike[str], device: str = "cpu", cuda_graph: bool = True,
                 sidecar: ModelSidecar | None = None) -> None:
        path = Path(model)
        self.path = path.with_suffix(".onnx") if path.suffix == ".npz" else path
        super().__init__(sidecar if sidecar is not None else read_sidecar(self.path, check_hash=False))
        self.device = device
        self.cuda_graph = cuda_graph
        self.module: Any = None
        self._parity = 0
        self._state: list[tuple[Any, Any]] = []  # one (h, c) on CPU or eager CUDA; two (ping-pong) with graphs
        self._graphs: list[Any] = []
        self._io: dict[str, Any] = {}
        self._torch: Any = None

    @property
    def uses_graphs(self) -> bool:
        """True when steps replay captured CUDA graphs."""
        return bool(self._graphs)

    def _open(self) -> None:
        import torch

        self._torch = torch
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise TorchUnavailableError(
                f"{self.name}: device {self.device!r} asked for, but torch.cuda.is_available() is False (torch "
                f"{torch.__version__}: a CPU-only build, or no GPU visible); use device='cpu' or the Numba backend")
        if dev.type not in ("cpu", "cuda"):
            raise TorchUnavailableError(f"{self.name}: device {self.device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
        if dev.type == "cuda" and dev.index is not None:
            torch.cuda.set_device(dev)  # graphs replay, and streams are taken, on the current device
        self.module = step_module(load_model_weights(self.path, self.sidecar)).to(dev)
        zeros = (lambda: torch.zeros(self.sidecar.state_shape, device=dev))  # noqa: E731
        sets = 2 if dev.type == "cuda" and self.cuda_graph else 1
        self._state = [(zeros(), zeros()) for _ in range(sets)]
        if dev.type == "cuda":
            actions = len(self.sidecar.action_limits)
            self._io = {"obs_host": torch.zeros((1, self.sidecar.obs_dim), pin_memory=True),
                        "action_host": torch.zeros((1, actions), pin_memory=True),
                        "obs": torch.zeros((1, self.sidecar.obs_dim), device=dev),
                        "action": torch.zeros((1, actions), device=dev)}
            self._io["obs_np"] = self._io["obs_host"].numpy()
            self._io["action_np"] = self._io["action_host"].numpy()
            if self.cuda_graph:
                self._graphs = [self._capture(p) for p in (0, 1)]

    def _graph_body(self, parity: int) -> None:
        """What graph ``parity`` holds: the step from state set ``parity`` into the other set and the action."""
        h, c = self._state[parity]
        action, h_new, c_new = self.module(self._io["obs"], h, c)
        nh, nc = self._state[1 - parity]
        nh.copy_(h_new)
        nc.copy_(c_new)
        self._io["action"].copy_(action)

    def _capture(self, parity: int) -> Any:
        import torch

        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False  # FP32 matmuls, as ONNX Runtime's reference computes
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.no_grad(), torch.cuda.stream(side):  # warm-up off the capture (torch's docs ask it)
                for _ in range(3):
                    self._graph_body(parity)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.no_grad(), torch.cuda.graph(graph):
                self._graph_body(parity)
            torch.cuda.synchronize()
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        return graph

    def _reset(self) -> None:
        for h, c in self._state:
            h.zero_()
            c.zero_()
        self._parity = 0

    def _step(self, obs: np.ndarray) -> np.ndarray:
        torch = self._torch
        if not self._io:  # CPU
            with torch.no_grad():
                action, h, c = self.module(torch.from_numpy(obs), *self._state[0])
            self._state[0] = (h, c)
            return action.numpy()[0].copy()
        io = self._io
        np.copyto(io["obs_np"], obs)
        io["obs"].copy_(io["obs_host"], non_blocking=True)
        if self._graphs:
            self._graphs[self._parity].replay()
            self._parity ^= 1
        else:
            with torch.no_grad():
                action, h, c = self.module(io["obs"], *self._state[0])
            self._state[0] = (h, c)
            io["action"].copy_(action)
        io["action_host"].copy_(io["action"], non_blocking=True)
        torch.cuda.current_stream().synchronize()
        return np.array(io["action_np"][0])

    def _close(self) -> None:
        self._graphs = []
        self._state = []
        self._io = {}
        self.module = None

    @property
    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (h, c) [L, 1, H] on the host: for tests and debugging only (a device-to-host copy)."""
        h, c = self._state[self._parity]
        return h.detach().cpu().numpy().copy(), c.detach().cpu().numpy().copy()
