"""SIGTERM ends `robonav train` after the current update, with a checkpoint that --resume continues."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import torch


def test_sigterm_checkpoints_and_resume_continues(tmp_path):
    args = [sys.executable, "-m", "robonav.cli", "train", "--launch", "train", "--quiet", "--json",
            "--set", f"train.out={tmp_path}", "--set", "train.run=sig", "--set", "train.workers=0",
            "--set", "train.ppo.num_envs=2", "--set", "train.ppo.steps=16", "--set", "train.ppo.seq_len=8",
            "--set", "train.imitation.updates=0", "--set", "train.sim.observation=plain",
            "--set", "train.checkpoint_every=1000", "--set", "train.keep_every=0",
            "--set", "train.policy.encoder=[16]", "--set", "train.policy.hidden=8"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress = tmp_path / "sig" / "progress.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not progress.exists() or len(progress.read_text().splitlines()) < 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    updates = json.loads(out.splitlines()[-1])["update"]
    ck = torch.load(tmp_path / "sig" / "last.pt", weights_only=True)
    assert json.loads(ck["meta"])["updates"] == updates >= 2
    again = subprocess.run([*args, "--resume", "--updates", "1"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["update"] == updates + 1
