"""Training throughput (images/s) of the engine vs a bare PyTorch fp32 loop, same model and batch (issue 5).

For each model (mobilenet_v2 at 224 px, inception_v3 at 299 px; the model's own input size)
and one batch size per model, side by side in this process, repeats interleaved, best of N:

- ``bare_fp32``: a plain PyTorch loop: ``build_classifier(name, weights="none")`` in train mode,
  every layer trainable, Adam, cross-entropy summed over ``model.training_outputs(x)`` with
  their weights (InceptionV3's auxiliary logits count 0.4, as in the engine), float32, default
  memory format, on in-memory random tensors (N, 1, S, S) in [0, 1];
- ``engine_memory``: the engine's ``ClassifierModule`` in a ``lightning.Trainer`` with the
  precision and channels-last format ``precision="auto"`` / ``channels_last=None`` resolve to
  on this machine and the rest of the engine's CPU fast path (the strided depthwise kernel swap
  on the bf16 path, freed memory kept in the process during the fit; ``mammocad.train.fastpath``),
  phase ``all`` (everything trains), fed the same in-memory tensors (TensorDataset, DataLoader
  with 0 workers): the engine's model-only step rate;
- ``engine_files``: ``train_classifier`` itself, exactly as users run it, on a real patch set
  read from disk (PNG patches through ``PatchDataModule``: augment preset ``full``, resize to
  the model's input size), with the engine's default loader workers (``--workers``; default
  auto, which is 0 on a CPU: patches load in the training process).

Diagnostics (``--diagnostics``; default ``bare_fp32_kept_memory,bare_bf16_cl,bare_engine_fastpath``),
bare loops that take the engine's fast path apart: ``bare_fp32_kept_memory`` is ``bare_fp32``
inside ``keep_freed_memory()`` (what the allocator setting alone gives float32);
``bare_bf16_cl`` uses bf16 autocast + channels-last model and inputs (the numeric fast path
alone); ``bare_engine_fastpath`` adds the strided depthwise kernel swap and the allocator
setting, i.e. the engine's whole fast path without Lightning; ``bare_bf16_cl_fused_adam`` adds
``Adam(fused=True)`` to ``bare_bf16_cl``; ``bare_bf16_cl_compiled`` runs its model through
``torch.compile`` (inductor, default mode; the compilation happens in the warm-up steps);
``engine_files_workers1`` / ``engine_files_workers2`` are ``engine_files``
with 1 / 2 DataLoader worker processes, to compare against loading in the training process.

Only steady-state steps count: ``--warmup`` steps, then ``--steps`` timed steps; the time runs
from the end of the last warm-up step to the end of the last timed step (optimizer step
included), so waiting for data is inside it and Trainer set-up, validation and checkpointing
are outside. For Lightning a callback takes ``time.perf_counter()`` at ``on_train_batch_start``
and ``on_train_batch_end``; ``data_wait_share`` is the share of the timed window spent between
one batch's end and the next one's start (fetching the batch plus loop overhead).

The patch set is built once at the start, untimed, in a temporary folder, in subprocesses (so
its memory never counts): ``mammocad prepare`` + ``mammocad patches --kind small`` (224 px) on
the mini-MIAS images in ``../shared/data/mini-mias-dev`` (~2600 patches, 1850 of them in the
five_class train split), or on a synthetic CBIS-DDSM when that folder is absent.

Printed as JSON lines, one per (model, variant): images/s (best of the repeats, with every
repeat's value), ratios to ``bare_fp32`` and (for ``engine_files``) to ``engine_memory``, the
precision and memory format used, what the convolutions actually ran in during the first
step (``conv_bf16_share``: share of Conv2d calls with a bfloat16 output; ``conv_cl_input_share``:
share whose input was channels-last), torch's thread count, the peak PSS of this process
and its workers (MiB), and per repeat the ratio to that repeat's ``bare_fp32`` and
``other_cpu_share``: the share of the machine's CPU time in the timed window used by processes
outside this benchmark (other jobs on a shared machine; near 0 for a clean measurement);
``worker_cpu_share``: the share used by this process's children (the DataLoader workers);
``minor_faults_per_step``: this process's minor page faults per timed step (pages the kernel
mapped in afresh, what the allocator setting avoids).

    python benchmarks/bench_train.py --steps 12 --repeats 2
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import psutil
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mammocad.models import build_classifier, get_spec
from mammocad.train.data import task_dataset
from mammocad.train.allocator import keep_freed_memory
from mammocad.train.engine import TrainConfig, train_classifier
from mammocad.train.fastpath import resolve_channels_last, resolve_precision, uses_strided_depthwise_kernel
from mammocad.train.module import ClassifierModule
from mammocad.train.strided_depthwise import use_fast_strided_depthwise
from mammocad.train.tasks import get_task
from mammocad.utils.errors import DataError

from _common import PeakMemory, machine, synthesise

MINI_MIAS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mini-mias-dev"
TASKS_TRIED = ("five_class", "benign_malignant", "mass_vs_calc")  # first one the patch set can train
PHASES = "all:1:1e-3"  # one epoch, every layer trainable
VARIANTS = ("bare_fp32", "engine_memory", "engine_files")
# bare loops with parts of the engine's fast path (run_bare's switches); the engine with loader workers
BARE_VARIANTS = {
    "bare_fp32": {},
    "bare_fp32_kept_memory": {"keep_memory": True},
    "bare_bf16_cl": {"fast": True},
    "bare_engine_fastpath": {"fast": True, "depthwise_kernel": True, "keep_memory": True},
    "bare_bf16_cl_fused_adam": {"fast": True, "fused": True},
    "bare_bf16_cl_compiled": {"fast": True, "compiled": True},
}
DIAGNOSTICS = (*(name for name in BARE_VARIANTS if name != "bare_fp32"), "engine_files_workers1",
               "engine_files_workers2")
BUILD_WORKERS = 2  # processes that prepare the patch set (untimed)
MEMORY_INTERVAL = 0.5  # s between PSS samples: a sample reads smaps (~15 ms of CPU), and steps last seconds


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mammocad.cli", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def build_patch_set(work: Path, source: Path, workers: int) -> tuple[Path, str, str]:
    """(patch set folder, task, description): small-context 224 px patches, default settings."""
    if source.is_dir():
        description = f"mini-MIAS ({source.name}), prepared with defaults, small patches 224 px"
    else:
        source = work / "synth"
        synthesise(source, 24, 1024, 768, workers)
        description = "synthetic CBIS-DDSM (24 patients, 1024x768), prepared with defaults, small patches 224 px"
    _cli("prepare", "--source", str(source), "--out", str(work / "prepared"), "--figures", "0",
         "--workers", str(workers))
    patches = work / "patches"
    _cli("patches", "--prepared", str(work / "prepared"), "--out", str(patches), "--kind", "small",
         "--no-figure", "--workers", str(workers))
    for name in TASKS_TRIED:
        try:
            train = task_dataset(patches, "train", get_task(name))
            task_dataset(patches, "val", get_task(name))
        except DataError:
            continue
        return patches, name, f"{description}; task {name}, {len(train)} train patches (PNG)"
    raise SystemExit(f"the patch set in {patches} has no task with every class in train and val")


class ConvProbe:
    """Forward hooks on every Conv2d for one step: which dtype and memory format they really ran in."""

    def __init__(self):
        self.calls = self.bf16 = self.cl_input = 0
        self.handles: list = []

    def attach(self, model: nn.Module) -> None:
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, nn.Conv2d)]

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.calls += 1
        self.bf16 += output.dtype == torch.bfloat16
        self.cl_input += inputs[0].is_contiguous(memory_format=torch.channels_last) and inputs[0].shape[1] > 1

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def summary(self) -> dict:
        calls = max(self.calls, 1)
        return {"conv_bf16_share": round(self.bf16 / calls, 3), "conv_cl_input_share": round(self.cl_input / calls, 3)}


def cpu_seconds() -> tuple[float, float, float]:
    """CPU seconds so far: (busy, whole machine; this process tree; this process alone)."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    root = psutil.Process()
    mine = root.cpu_times()
    main_process = mine.user + mine.system
    tree = main_process + mine.children_user + mine.children_system
    for proc in root.children(recursive=True):
        try:
            t = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        tree += t.user + t.system + t.children_user + t.children_system
    return busy, tree, main_process


def wait_quiet(threshold: float, timeout: float) -> float:
    """Wait (at most ``timeout`` s) until other processes use under ``threshold`` of the machine's CPU
    over a 2 s window; returns the last share seen."""
    deadline = time.monotonic() + timeout
    while True:
        (busy0, own0, _), started = cpu_seconds(), time.perf_counter()
        time.sleep(2.0)
        (busy1, own1, _), seconds = cpu_seconds(), time.perf_counter() - started
        other = max(0.0, (busy1 - busy0) - (own1 - own0)) / (seconds * psutil.cpu_count())
        if other < threshold or time.monotonic() > deadline:
            return other


class Marks:
    """Step start/end times of one run, and the CPU the rest of the machine used in the timed window."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps = warmup, steps
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.cpu: list[tuple[float, float, float]] = []
        self.faults: list[int] = []

    def start(self) -> None:
        self.starts.append(time.perf_counter())

    def end(self) -> None:
        self.ends.append(time.perf_counter())
        if len(self.ends) in (self.warmup, self.warmup + self.steps):
            self.cpu.append(cpu_seconds())
            self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)

    def summary(self) -> dict:
        """seconds: the timed window; waiting: its time between batches; shares of the machine's CPU
        time in it: other_cpu_share used by processes outside this benchmark (other jobs),
        worker_cpu_share by this process's children (DataLoader workers)."""
        if len(self.ends) != self.warmup + self.steps:
            raise RuntimeError(f"expected {self.warmup + self.steps} steps, ran {len(self.ends)}")
        seconds = self.ends[-1] - self.ends[self.warmup - 1]
        waiting = sum(self.starts[i] - self.ends[i - 1] for i in range(self.warmup, self.warmup + self.steps))
        (busy0, tree0, main0), (busy1, tree1, main1) = self.cpu
        capacity = seconds * psutil.cpu_count()
        return {"seconds": seconds, "waiting": waiting,
                "other_cpu_share": max(0.0, (busy1 - busy0) - (tree1 - tree0)) / capacity,
                "worker_cpu_share": max(0.0, (tree1 - tree0) - (main1 - main0)) / capacity,
                "minor_faults_per_step": (self.faults[1] - self.faults[0]) / self.steps}


class StepTimer(Callback):
    """``Marks`` at every training batch's start and end; probes the convolutions in the first step."""

    def __init__(self, warmup: int, steps: int):
        self.marks = Marks(warmup, steps)
        self.probe = ConvProbe()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.probe.attach(pl_module)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.marks.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.marks.end()
        self.probe.detach()


def run_bare(name: str, num_classes: int, xs: torch.Tensor, ys: torch.Tensor, batch: int, warmup: int,
             steps: int, fast: bool = False, depthwise_kernel: bool = False, keep_memory: bool = False,
             fused: bool = False, compiled: bool = False) -> dict:
    """The bare loop; ``fast``: bf16 autocast + channels-last like the engine; ``depthwise_kernel``:
    ``use_fast_strided_depthwise``; ``keep_memory``: inside ``keep_freed_memory()``; ``fused``:
    Adam(fused=True); ``compiled``: the model's training outputs through ``torch.compile``."""
    torch.manual_seed(0)
    model = build_classifier(name, num_classes, weights="none").train()
    model.requires_grad_(True)
    if fast:
        model.to(memory_format=torch.channels_last)
    if depthwise_kernel:
        use_fast_strided_depthwise(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    training_outputs = torch.compile(model.training_outputs) if compiled else model.training_outputs
    probe = ConvProbe()
    probe.attach(model)
    marks = Marks(warmup, steps)
    with PeakMemory(MEMORY_INTERVAL) as peak, keep_freed_memory(enabled=keep_memory):
        for i in range(warmup + steps):
            marks.start()
            x, y = xs[i * batch:(i + 1) * batch], ys[i * batch:(i + 1) * batch]
            if fast:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
                outputs = training_outputs(x)
            loss = sum(weight * F.cross_entropy(logits.float(), y) for weight, logits in outputs)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            marks.end()
            probe.detach()
    return {**marks.summary(), "peak_pss_mib": peak.mib, "precision": "bf16-mixed" if fast else "32",
            "channels_last": fast, **probe.summary()}


def run_engine_memory(name: str, task: str, size: int, xs: torch.Tensor, ys: torch.Tensor, batch: int,
                      warmup: int, steps: int, root: Path) -> dict:
    precision = resolve_precision("auto", "cpu")
    channels_last = resolve_channels_last(None, "cpu", precision)
    L.seed_everything(0, verbose=False)
    module = ClassifierModule(model=name, task=task, input_size=size, phases=PHASES, weights="none",
                              channels_last=channels_last,
                              fast_strided_depthwise=uses_strided_depthwise_kernel("cpu", precision))
    loader = DataLoader(TensorDataset(xs, ys), batch_size=batch, shuffle=False, num_workers=0)
    timer = StepTimer(warmup, steps)
    trainer = L.Trainer(accelerator="cpu", devices=1, precision=precision, max_epochs=1,
                        limit_train_batches=warmup + steps, callbacks=[timer], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, log_every_n_steps=1, default_root_dir=root)
    with PeakMemory(MEMORY_INTERVAL) as peak, keep_freed_memory():  # as train_classifier does on the CPU
        trainer.fit(module, train_dataloaders=loader)
    return {**timer.marks.summary(), "peak_pss_mib": peak.mib, "precision": precision,
            "channels_last": channels_last, **timer.probe.summary()}


def run_engine_files(name: str, task: str, patches: Path, batch: int, workers: int | None, warmup: int, steps: int,
                     out: Path) -> dict:
    config = TrainConfig(data=patches, task=task, model=name, weights="none", phases=PHASES, batch_size=batch,
                         workers=workers, augment="full", seed=0, out=out, limit_train_batches=warmup + steps,
                         limit_val_batches=1)
    timer = StepTimer(warmup, steps)
    with PeakMemory(MEMORY_INTERVAL) as peak:
        train_classifier(config, progress=False, callbacks=[timer])
    run = json.loads((out / "run.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    return {**timer.marks.summary(), "peak_pss_mib": peak.mib, "precision": run["precision"],
            "channels_last": run["channels_last"], "workers": run["workers"], **timer.probe.summary()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mobilenet_v2,inception_v3", help="comma-separated registry names")
    parser.add_argument("--batch-mobilenet", type=int, default=32, help="batch of mobilenet_v2 (and other models)")
    parser.add_argument("--batch-inception", type=int, default=16, help="batch of inception_v3")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the best counts")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader workers of engine_files (default: the engine's auto choice)")
    parser.add_argument("--diagnostics", type=lambda text: [v for v in text.split(",") if v and v != "none"],
                        default=["bare_fp32_kept_memory", "bare_bf16_cl", "bare_engine_fastpath"],
                        help=f"extra variants, comma-separated, or none: {', '.join(DIAGNOSTICS)}")
    parser.add_argument("--quiet-below", type=float, default=0.0,
                        help="shared machine: before each run, wait until other processes use under this share "
                             "of the CPU (e.g. 0.1); 0: do not wait")
    parser.add_argument("--quiet-timeout", type=float, default=300.0, help="longest wait for quiet, s")
    parser.add_argument("--source", type=Path, default=MINI_MIAS, help="mini-MIAS folder (synthetic when absent)")
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be >= 1")
    unknown = set(args.diagnostics) - set(DIAGNOSTICS)
    if unknown:
        parser.error(f"unknown diagnostics {', '.join(sorted(unknown))}; choose from {', '.join(DIAGNOSTICS)}")
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        patches, task, data_description = build_patch_set(work, args.source, BUILD_WORKERS)
        num_classes = get_task(task).num_classes
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        inputs = {}
        generator = torch.Generator().manual_seed(0)
        for name in models:
            size = get_spec(name).input_size
            batch = args.batch_inception if name == "inception_v3" else args.batch_mobilenet
            count = batch * (args.warmup + args.steps)
            inputs[name] = (size, batch, torch.rand(count, 1, size, size, generator=generator),
                            torch.randint(0, num_classes, (count,), generator=generator))
        variants = VARIANTS + tuple(args.diagnostics)
        results: dict[tuple[str, str], list[dict]] = {}
        for r in range(args.repeats):  # interleaved, so drift on a shared machine hits every variant alike
            for name in models:
                size, batch, xs, ys = inputs[name]
                for variant in variants:
                    if args.quiet_below > 0:
                        wait_quiet(args.quiet_below, args.quiet_timeout)
                    if variant in BARE_VARIANTS:
                        result = run_bare(name, num_classes, xs, ys, batch, args.warmup, args.steps,
                                          **BARE_VARIANTS[variant])
                    elif variant == "engine_memory":
                        result = run_engine_memory(name, task, size, xs, ys, batch, args.warmup, args.steps,
                                                   work / "lightning")
                    else:
                        workers = (args.workers if variant == "engine_files"
                                   else int(variant.removeprefix("engine_files_workers")))
                        result = run_engine_files(name, task, patches, batch, workers, args.warmup,
                                                  args.steps, work / f"run-{name}-{r}")
                    gc.collect()  # ends the finished run's persistent loader workers before the next run
                    result["images_per_s"] = batch * args.steps / result["seconds"]
                    results.setdefault((name, variant), []).append(result)
                    print(json.dumps({"progress": f"repeat {r} {name} {variant}",
                                      "images_per_s": round(result["images_per_s"], 2),
                                      "other_cpu_share": round(result["other_cpu_share"], 3),
                                      "minor_faults_per_step": round(result["minor_faults_per_step"]),
                                      "children": len(psutil.Process().children(recursive=True))}),
                          file=sys.stderr, flush=True)
        for name in models:
            size, batch, _, _ = inputs[name]
            best = {variant: max(results[(name, variant)], key=lambda res: res["images_per_s"])
                    for variant in variants}
            for variant in variants:
                runs, res = results[(name, variant)], best[variant]
                print(json.dumps({
                    "benchmark": "train", "model": name, "input_size": size, "batch": batch, "variant": variant,
                    "precision": res["precision"], "channels_last": res["channels_last"],
                    "images_per_s": round(res["images_per_s"], 2),
                    "images_per_s_runs": [round(run["images_per_s"], 2) for run in runs],
                    # the same repeat's ratio: less sensitive to which variant met a quiet moment
                    "ratio_to_bare_fp32_runs": [round(run["images_per_s"] / bare["images_per_s"], 3)
                                                for run, bare in zip(runs, results[(name, "bare_fp32")])],
                    "other_cpu_share_runs": [round(run["other_cpu_share"], 3) for run in runs],
                    "ratio_to_bare_fp32": round(res["images_per_s"] / best["bare_fp32"]["images_per_s"], 3),
                    "ratio_to_engine_memory": (round(res["images_per_s"] / best["engine_memory"]["images_per_s"], 3)
                                               if variant.startswith("engine_files") else None),
                    "data_wait_share": round(res["waiting"] / res["seconds"], 3),
                    "worker_cpu_share": round(res["worker_cpu_share"], 3),
                    "minor_faults_per_step_runs": [round(run["minor_faults_per_step"]) for run in runs],
                    "conv_bf16_share": res["conv_bf16_share"], "conv_cl_input_share": res["conv_cl_input_share"],
                    "warmup": args.warmup, "steps": args.steps, "repeats": args.repeats,
                    "workers": res.get("workers", 0),
                    "peak_pss_mib": max(run["peak_pss_mib"] for run in runs),
                    "torch_threads": torch.get_num_threads(), "machine": machine(),
                    "input": data_description if variant.startswith("engine_files") else "in-memory random tensors",
                }), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
