"""The README's compress examples run as printed (the DDP one in a one-rank gloo group)."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import torch
import torch.distributed as dist

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("**Gradient sparsification**", 1)[1].split("**SG-MCMC**", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_kernel_example_runs(capsys) -> None:
    exec(compile(_blocks()[0], "README", "exec"), {})
    assert capsys.readouterr().out.strip()


def test_hook_example_checkpoints_and_resumes(tmp_path, monkeypatch) -> None:
    code = _blocks()[1]
    assert "..." in code
    step = ("for _ in range(3):\n"
            "    ddp(torch.randn(8, 6)).sum().backward()\n")
    code = code.replace("...", step, 1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.chdir(tmp_path)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0,
                            world_size=1)
    try:
        ns = {"torch": torch, "model": torch.nn.Linear(6, 3), "model2": torch.nn.Linear(6, 3)}
        exec(compile(code, "README", "exec"), ns)
        state, resumed = ns["state"], ns["ckpt"]["hook"]
        assert state.stats()["compressed_steps"] == 2 and resumed.stats() == state.stats()
        ns["ddp2"](torch.randn(8, 6)).sum().backward()  # the restored hook runs
        assert resumed.iter == 4
    finally:
        dist.destroy_process_group()
    assert os.path.exists(tmp_path / "ckpt.pt")
