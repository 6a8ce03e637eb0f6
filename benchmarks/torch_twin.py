"""The PyTorch twin of theseus's GPT, for ``train_throughput.py``: same model, optimizer and schedule.

The model is nanoGPT-style eager PyTorch with theseus's architecture and initialisation:
pre-norm blocks without biases, a fused q/k/v projection, ``scaled_dot_product_attention``
(causal), tanh-GELU MLP 4x, learned or rotary positions, an LM head tied to the token
embedding, weights N(0, 0.02) with the output projections scaled by ``1/sqrt(2 L)``.
AdamW (betas 0.9/0.95, weight decay 0.1 on matrices only) after clipping to norm 1.

Two loops use it: :func:`time_steps` (a fixed batch, timed step by step) and
:func:`train_whole` (the same tokenized data, batches, learning-rate schedule, logging,
validation and final checkpoint as ``theseus run``, for the whole-process comparison).
Nothing here imports JAX.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def build_model(layers: int, d: int, heads: int, seq: int, vocab: int, position: str = "learned") -> nn.Module:
    """A decoder with theseus's GPT architecture and initialisation (see the module docstring)."""
    head_dim = d // heads

    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        first, second = x[..., : head_dim // 2], x[..., head_dim // 2 :]
        return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(d, 3 * d, bias=False)
            self.out = nn.Linear(d, d, bias=False)

        def forward(self, x: torch.Tensor, angles: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
            b, t, _ = x.shape
            q, k, v = (z.view(b, t, heads, head_dim).transpose(1, 2) for z in self.qkv(x).split(d, dim=2))
            if angles is not None:
                q, k = rotate(q, *angles), rotate(k, *angles)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.out(y.transpose(1, 2).reshape(b, t, d))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn_norm = nn.LayerNorm(d, bias=False)
            self.attn = Attention()
            self.mlp_norm = nn.LayerNorm(d, bias=False)
            self.up = nn.Linear(d, 4 * d, bias=False)
            self.down = nn.Linear(4 * d, d, bias=False)

        def forward(self, x: torch.Tensor, angles: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
            x = x + self.attn(self.attn_norm(x), angles)
            return x + self.down(F.gelu(self.up(self.mlp_norm(x)), approximate="tanh"))

    class TorchGPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = nn.Embedding(vocab, d)
            self.positions = nn.Embedding(seq, d) if position == "learned" else None
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.final_norm = nn.LayerNorm(d, bias=False)
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    std = 0.02 / math.sqrt(2 * layers) if name.endswith(("out.weight", "down.weight")) else 0.02
                    nn.init.normal_(p, std=std)

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            t = idx.shape[1]
            x = self.tokens(idx)
            angles = None
            if self.positions is not None:
                x = x + self.positions(torch.arange(t))
            else:
                inv_freq = 10000.0 ** (-torch.arange(0, head_dim // 2, dtype=torch.float32) * 2 / head_dim)
                phase = torch.arange(t, dtype=torch.float32)[:, None] * inv_freq
                angles = (phase.cos(), phase.sin())
            for block in self.blocks:
                x = block(x, angles)
            return self.final_norm(x) @ self.tokens.weight.T

    return TorchGPT()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """AdamW with theseus's defaults: betas 0.9/0.95, decay 0.1 on matrices but not on embeddings."""
    named = list(model.named_parameters())
    decayed = [p for n, p in named if p.dim() >= 2 and "tokens" not in n and "positions" not in n]
    rest = [p for n, p in named if not (p.dim() >= 2 and "tokens" not in n and "positions" not in n)]
    groups = [{"params": decayed, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def cosine_lr(step: int, total: int, peak: float, warmup_pct: float = 0.01, floor_ratio: float = 0.1) -> float:
    """theseus's ``cosine`` schedule: linear warmup, then a half cosine to ``peak * floor_ratio``."""
    warmup = round(warmup_pct * total)
    if step < warmup:
        return peak * min(1.0, (step + 1) / warmup)
    span = total - 1 - warmup
    fraction = 1.0 if span <= 0 else min(max((step - warmup) / span, 0.0), 1.0)
    floor = peak * floor_ratio
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * fraction))


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Forward, cross entropy, backward, clip to norm 1, AdamW; returns the loss (not synced)."""
    logits = model(x)
    loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def time_steps(shape: dict[str, Any], x: Any, y: Any, steps: int, warmup: int, cpu_seconds: Any) -> dict[str, Any]:
    """Time ``steps`` eager steps on the fixed batch ``x``/``y`` (numpy) after ``warmup`` untimed ones."""
    torch.manual_seed(0)
    model = build_model(shape["layers"], shape["d_model"], shape["heads"], shape["seq"], shape["vocab"],
                        shape["position"])
    opt = build_optimizer(model, 3e-4)
    tx, ty = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
    times, cpu = [], []
    loss = 0.0
    for i in range(warmup + steps):
        start, cpu_start = time.perf_counter(), cpu_seconds()
        loss = float(train_step(model, opt, tx, ty))
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu.append(cpu_seconds() - cpu_start)
    return {
        "times": times, "cpu": cpu, "loss": loss, "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()), "version": torch.__version__,
    }


def train_whole(data_dir: str, settings: dict[str, Any], out: Path) -> dict[str, Any]:
    """Train like ``theseus run`` would: same batches, schedule, log/validation steps, final checkpoint.

    ``settings`` holds the shape plus ``steps``, ``lr``, ``log_every``, ``val_every`` and
    ``val_batches``. Log steps read the loss (a sync, as theseus's do); validation runs
    the fixed validation batches without gradients. Writes ``metrics.jsonl`` and a final
    checkpoint under ``out``.
    """
    import numpy as np

    from theseus.data.loader import BatchSampler, TokenDataset

    torch.manual_seed(0)
    s = settings
    sampler = BatchSampler([(TokenDataset.open(data_dir), 1.0)], batch_size=s["batch"], block_size=s["seq"], seed=0)
    val = [{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in b.items()}
           for b in sampler.validation_batches(s["val_batches"])]
    model = build_model(s["layers"], s["d_model"], s["heads"], s["seq"], s["vocab"], s["position"])
    opt = build_optimizer(model, s["lr"])
    out.mkdir(parents=True, exist_ok=True)
    records = []
    window = time.perf_counter()
    for step in range(1, s["steps"] + 1):
        batch = sampler.batch(step - 1)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step - 1, s["steps"], s["lr"])
        loss = train_step(model, opt, torch.from_numpy(batch["x"]).long(), torch.from_numpy(batch["y"]).long())
        last = step == s["steps"]
        validate = last or (s["val_every"] > 0 and step % s["val_every"] == 0)
        if step % s["log_every"] == 0 or last or validate:
            record: dict[str, Any] = {"step": step, "loss": float(loss)}
            if validate:
                model.eval()
                with torch.no_grad():
                    losses = [
                        F.cross_entropy(model(b["x"].long()).flatten(0, 1), b["y"].long().flatten(), reduction="sum")
                        / b["y"].numel()
                        for b in val
                    ]
                model.train()
                record["val_loss"] = float(statistics.fmean(float(v) for v in losses))
            record["elapsed"] = time.perf_counter() - window
            records.append(record)
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, out / "final.pt")
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return records[-1]
