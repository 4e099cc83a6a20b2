"""Where a CPU training step spends its time: torch.profiler over the bare loop's steps, top ops by self time.

The loop is ``bench_train.py``'s bare loop on the engine's CPU fast path (bf16 autocast +
channels-last, the strided depthwise kernel swap, freed memory kept in the process;
``--plain-bf16`` for bf16 + channels-last alone, ``--fp32`` for plain float32): random
in-memory inputs (N, 1, S, S), Adam, cross-entropy over ``model.training_outputs``.
``--warmup`` untimed steps, then ``--steps`` profiled ones. Prints one JSON line per op (name, self CPU ms per step, share of the total,
calls per step), then a total line.

    python benchmarks/profile_train_step.py --model mobilenet_v2 --batch 32
"""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from mammocad.models import build_classifier, get_spec
from mammocad.train.allocator import keep_freed_memory
from mammocad.train.strided_depthwise import use_fast_strided_depthwise

from _common import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenet_v2", help="registry name")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=12, help="ops to print")
    parser.add_argument("--fp32", action="store_true", help="float32, default memory format")
    parser.add_argument("--plain-bf16", action="store_true",
                        help="bf16 + channels-last without the kernel swap and the allocator setting")
    args = parser.parse_args()

    torch.manual_seed(0)
    size = get_spec(args.model).input_size
    fast = not args.fp32
    model = build_classifier(args.model, args.classes, weights="none").train()
    memory_format = torch.channels_last if fast else torch.contiguous_format
    model.to(memory_format=memory_format)
    extras = fast and not args.plain_bf16
    if extras:
        use_fast_strided_depthwise(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 1, size, size).contiguous(memory_format=memory_format)
    y = torch.randint(0, args.classes, (args.batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            outputs = model.training_outputs(x)
        loss = sum(weight * F.cross_entropy(logits.float(), y) for weight, logits in outputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with keep_freed_memory() if extras else nullcontext():
        for _ in range(args.warmup):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total_us = sum(e.self_cpu_time_total for e in events)
    for event in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:args.top]:
        print(json.dumps({"benchmark": "profile_train_step", "model": args.model, "op": event.key,
                          "self_ms_per_step": round(event.self_cpu_time_total / 1e3 / args.steps, 1),
                          "share": round(event.self_cpu_time_total / total_us, 3),
                          "calls_per_step": event.count // args.steps}))
    print(json.dumps({"benchmark": "profile_train_step", "model": args.model, "input_size": size, "batch": args.batch,
                      "precision": ("32" if not fast else "bf16-mixed, channels-last" if args.plain_bf16
                                    else "bf16-mixed, channels-last, strided depthwise kernel, kept memory"),
                      "total_ms_per_step": round(total_us / 1e3 / args.steps, 1),
                      "torch_threads": torch.get_num_threads(), "machine": machine()}))


if __name__ == "__main__":
    main()
