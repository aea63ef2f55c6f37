"""Runs torch.optim.AdamW (float64) on a problem given as JSON and prints the final parameters.

Input (file argv[1]): {"params": {name: {"shape": [..], "values": [..]}}, "grads": [{name: [..]}, ...],
"lrs": [..], "betas": [b1, b2], "eps": e, "weightDecay": wd, "noDecay": [names], "scales": {name: s},
"maxGradNorm": null | x}. Groups are built as MAE does (one per (weight decay, lr scale)), and each
step sets group["lr"] = lr * group["lr_scale"] as MAE's adjust_learning_rate does.
"""
import json
import sys

import torch

with open(sys.argv[1]) as f:
    problem = json.load(f)

params = {
    name: torch.nn.Parameter(torch.tensor(p["values"], dtype=torch.float64).reshape(p["shape"]))
    for name, p in problem["params"].items()
}
groups = {}
for name, param in params.items():
    wd = 0.0 if name in problem["noDecay"] else problem["weightDecay"]
    scale = problem["scales"][name]
    groups.setdefault((wd, scale), {"params": [], "weight_decay": wd, "lr_scale": scale})["params"].append(param)
optimizer = torch.optim.AdamW(list(groups.values()), lr=0.0, betas=tuple(problem["betas"]), eps=problem["eps"])

norms = []
for grads, lr in zip(problem["grads"], problem["lrs"]):
    for name, param in params.items():
        param.grad = torch.tensor(grads[name], dtype=torch.float64).reshape(param.shape) if name in grads else None
    if problem["maxGradNorm"] is not None:
        with_grad = [p for p in params.values() if p.grad is not None]
        norms.append(float(torch.nn.utils.clip_grad_norm_(with_grad, problem["maxGradNorm"])))
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
    optimizer.step()

print(json.dumps({"params": {n: p.detach().reshape(-1).tolist() for n, p in params.items()}, "norms": norms}))
