"""One trainer for every method and ablation: :func:`train` turns a :class:`~fairpo.run.config.RunConfig` into a run record.

The frozen part of the backbone runs once per data set into the feature cache; a run trains the
backbone's last ``trainable_blocks`` blocks and the per-label heads on those cached features. FairPO
runs compare against their reference — the ``bce`` run of the same data set, seed and label split,
trained on demand — and read the reference's logits from a one-off pass (the reference is frozen and
the inputs fixed, so its logits are too). They start from fresh heads (``init="fresh"``, as the released
code does) or from a copy of the reference (``init="reference"``). Early stopping watches the validation
split's mAP (overall, or privileged with ``selection="privileged"``); the test split is evaluated once,
at the best checkpoint. Every random stream has its own seeded generator (:mod:`fairpo.rng`).

Run folder (``fairpo.run.store.run_dir``): ``record.json``, ``steps.jsonl`` (per-step history),
``epochs.jsonl`` (per-epoch validation metrics, and the test metrics of each epoch under ``audit.``,
logged for the reproduction audit and never used to select anything), ``best.safetensors`` (best weights),
``test_logits.safetensors`` (the test split's logits and labels at the best checkpoint) and, while the
run is unfinished, ``last.pt`` (everything needed to resume after a crash).
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from fairpo import rng
from fairpo.run import store
from fairpo.data.backbone import (DIGITS_BACKBONE, PAPER_BACKBONE, TrainedTop, digits_backbone, digits_backbone_id,
                             feature_size, load_vit, split_backbone)
from fairpo.run.config import RunConfig
from fairpo.method.metrics import dead_heads, group_metrics
from fairpo.method.objective import Objective
from fairpo.method.heads import PerLabelHeads


class Network(nn.Module):
    """Cached features → logits: the trained top of the backbone, then the per-label heads."""

    def __init__(self, top: TrainedTop, heads: PerLabelHeads) -> None:
        super().__init__()
        self.top, self.heads = top, heads

    def forward(self, features: Tensor) -> Tensor:
        return self.heads(self.top(features))


@dataclass
class Prepared:
    """Everything a run needs that does not depend on its method: data, cached features, network."""

    data: object
    features: dict[str, Tensor]
    labels: dict[str, Tensor]
    network: Network
    backbone: str


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no GPU is visible; use device 'auto' or 'cpu'")
    return torch.device(name)


def prepare(config: RunConfig, cache_dir: str | os.PathLike, device: torch.device) -> Prepared:
    """Load the data, run the frozen backbone over every split (cached) and build a fresh network.

    The data set is generated with a fixed seed (``config.extra['data_seed']``, default 0), so every
    seed of a method trains on the same data and shares one feature cache: seeds measure training
    variance, as in the paper's three runs on fixed COCO splits.
    """
    from fairpo.data import load_dataset
    from fairpo.data.cache import cached_features

    options = dict(config.extra)
    data_seed = options.pop("data_seed", 0)
    if config.dataset == "features":
        options.setdefault("num_labels", config.num_labels)
    data = load_dataset(config.dataset, config.data_root, seed=data_seed, privileged=config.privileged,
                        privileged_fraction=config.privileged_fraction, val_fraction=config.val_fraction,
                        **options)
    splits = {"train": data.train, "val": data.val, "test": data.test}
    labels = {name: split.labels for name, split in splits.items()}
    if data.kind == "features":
        features = {name: split.features if split.indices is None else split.features[split.indices]
                    for name, split in splits.items()}
        top, width, backbone = TrainedTop(None, 0), data.input_shape[0], "none"
    else:
        backbone = config.backbone or (DIGITS_BACKBONE if config.dataset == "digits" else PAPER_BACKBONE)
        vit = digits_backbone(cache_dir) if backbone == DIGITS_BACKBONE else load_vit(backbone)
        encoder, top = split_backbone(vit, config.trainable_blocks)
        backbone_id = digits_backbone_id() if backbone == DIGITS_BACKBONE else backbone
        key = dict(dataset=config.dataset, backbone=backbone_id, trainable_blocks=config.trainable_blocks,
                   resolution=data.input_shape[-1], data_seed=data_seed)
        features = {name: cached_features(split, encoder.to(device), key=dict(key, split=name),
                                          cache_dir=Path(cache_dir) / "features", device=device)
                    for name, split in splits.items()}
        width = feature_size(vit)
    heads = PerLabelHeads(width, len(data.label_names), generator=rng.generator(*stream(config, "heads")),
                          activation=config.head_activation)
    network = Network(top, heads).to(device)
    return Prepared(data, features, labels, network, backbone)


def stream(config: RunConfig, purpose: str, *index) -> tuple:
    """The key of one of a run's random streams (see :mod:`fairpo.rng`).

    The heads' stream is shared by the runs without a reference (BCE, focal, Group DRO: paired
    comparisons start from the same weights) and, separately, by the FairPO runs of a seed, so a FairPO
    run's fresh heads are never its reference's initial heads.
    """
    data_seed = config.extra.get("data_seed", 0)
    if purpose == "heads":
        index = ("fairpo" if config.needs_reference else "reference", *index)
    return (data_seed, config.seed, purpose, *index)


@torch.no_grad()
def predict(network: nn.Module, features: Tensor, device: torch.device, batch_size: int = 1024) -> Tensor:
    """Logits (N, T) of a whole split, in eval mode, on the CPU."""
    network.eval()
    out = [network(features[i:i + batch_size].to(device, torch.float32)).float().cpu()
           for i in range(0, len(features), batch_size)]
    return torch.cat(out)


def _reference(config: RunConfig, results_dir, cache_dir, prepared: Prepared, device, quiet,
               force_reference: bool) -> tuple[dict, Tensor]:
    """Train (or reuse) the ``bce`` reference and return its record and its train-split logits.

    The reference's weights go into a frozen copy of the network; the run's own network keeps its
    fresh initialisation unless ``config.init == "reference"``, where it starts as a copy.
    """
    try:
        ref_record = train(config.reference(), results_dir, cache_dir=cache_dir, quiet=quiet, force=force_reference)
    except (store.StaleRunError, store.BrokenRunError) as err:
        raise type(err)(f"this run's BCE reference cannot be reused: {err} For a FairPO run that means "
                        f"force_reference=True (fairpo train --force-reference; papermill -p force_reference True)"
                        ) from None
    mine = prepared.data.describe()
    theirs = ref_record["data"]
    for field in ("name", "label_names", "privileged"):
        if theirs.get(field) != mine.get(field):
            raise store.StaleRunError(
                f"the reference run in {Path(results_dir) / ref_record['run_dir']} was trained with a different "
                f"{field} ({theirs.get(field)!r}, this run has {mine.get(field)!r}); retrain it with "
                f"force_reference=True (fairpo train --force-reference) or use another results_dir")
    tensors, _ = store.load_checkpoint(Path(results_dir) / ref_record["run_dir"] / "best.safetensors")
    frozen = copy.deepcopy(prepared.network)
    frozen.load_state_dict(tensors)
    if config.init == "reference":
        prepared.network.load_state_dict(tensors)
    return ref_record, predict(frozen, prepared.features["train"], device)


def _check_finite(diagnostics: dict[str, float], total: Tensor, step: int) -> None:
    if torch.isfinite(total):
        return
    bad = [g for g in ("loss_P", "loss_N") if not torch.isfinite(torch.tensor(diagnostics.get(g, 0.0)))]
    groups = " and ".join({"loss_P": "privileged", "loss_N": "non-privileged"}[g] for g in bad) or "total"
    raise FloatingPointError(
        f"non-finite loss at step {step} (group: {groups}); the run stopped and its last good epoch "
        f"checkpoint (last.pt) is kept: lower lr, check the data, then run again to resume")


def train(config: RunConfig, results_dir: str | os.PathLike = "results", *, cache_dir=None, force: bool = False,
          force_reference: bool = False, quiet: bool = False, stop_after_epoch: int | None = None) -> dict:
    """Train one run and return its record.

    A finished run is read back, not retrained, when it was trained with the same identity
    (:meth:`fairpo.run.config.RunConfig.identity`); a finished run with another identity raises
    :class:`fairpo.run.store.StaleRunError` naming the differing fields. ``force`` retrains whatever the
    folder holds (a damaged record included); ``force_reference`` retrains a FairPO run's reference too.

    On a CPU the run uses ``config.cpu_threads`` threads: the digits model is so small that more
    threads mostly wait on each other, and on a busy machine several threads per process can make a
    step ten times slower. ``stop_after_epoch`` (for tests) stops the process as if it were killed
    after that epoch's checkpoint, leaving a resumable run.
    """
    folder = store.run_dir_of(results_dir, config)
    if not force:
        record = store.reusable_record(folder, config.identity(), RunConfig.defaults())
        if record is not None:
            return record
    threads = torch.get_num_threads()
    if config.cpu_threads and resolve_device(config.device).type == "cpu":
        torch.set_num_threads(config.cpu_threads)
    try:
        return _train(config, folder, results_dir, cache_dir, force, force_reference, quiet, stop_after_epoch)
    finally:
        torch.set_num_threads(threads)


def _train(config: RunConfig, folder: Path, results_dir, cache_dir, force, force_reference, quiet,
           stop_after_epoch) -> dict:
    from tqdm.auto import tqdm

    rank, world = _distributed(config)
    writer = rank == 0  # under torchrun only rank 0 writes the run folder
    cache_dir = Path(cache_dir) if cache_dir is not None else Path(results_dir) / ".cache"
    device = resolve_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    started = time.perf_counter()
    if rank > 0:  # rank 0 builds the backbone and feature caches; the others wait, then read them
        _barrier(world)
    prepared = prepare(config, cache_dir, device)
    if rank == 0:
        _barrier(world)
    data, net = prepared.data, prepared.network
    ref_record, ref_train = (_reference(config, results_dir, cache_dir, prepared, device, quiet, force_reference)
                             if config.needs_reference else (None, None))
    if ref_train is not None:  # the reference's own copy stays frozen; the run trains `net`
        ref_train = ref_train.to(device)

    objective = Objective(config, data.privileged, len(data.label_names), reduce=_mean_over_ranks if world > 1 else None)
    params = [p for p in net.parameters() if p.requires_grad]
    # fused: one kernel for all parameters instead of a loop over them (a fifth of a digits step on a CPU)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    draws = rng.generator(*stream(config, "draws", rank))
    state = dict(epoch=0, best=-float("inf"), best_epoch=-1, bad_epochs=0, steps=[], epochs=[])
    folder.mkdir(parents=True, exist_ok=True)
    if force and writer:  # whatever the folder held — a finished run, a damaged one, a checkpoint — goes
        for name in (store.RECORD_FILE, "last.pt"):
            (folder / name).unlink(missing_ok=True)
    _barrier(world)
    if (folder / "last.pt").exists():  # resume a run that was stopped
        saved = torch.load(folder / "last.pt", weights_only=True)  # tensors and plain containers: no pickle
        net.load_state_dict(saved["network"])
        optimizer.load_state_dict(saved["optimizer"])
        objective.load_state_dict(saved["objective"])
        draws.set_state(saved["draws"][rank] if isinstance(saved["draws"], list) else saved["draws"])
        state = saved["state"]
    model = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    cuda = device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext

    x_train, y_train = prepared.features["train"], prepared.labels["train"]
    n = len(y_train)
    bar = tqdm(range(state["epoch"], config.epochs), desc=config.run_name, disable=quiet or not writer, leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(n, generator=rng.generator(*stream(config, "order", epoch)))
        for batch in order.split(config.batch_size):
            idx = batch[rank::world]  # every rank takes its share of the same global batch
            x, y = x_train[idx], y_train[idx]
            if cuda:
                x, y = x.pin_memory(), y.pin_memory()
            x = x.to(device, torch.float32, non_blocking=True)
            y = y.to(device, non_blocking=True)
            ref = ref_train[idx.to(device)] if ref_train is not None else None
            with autocast():
                logits = model(x)
            total, diag = objective.step(logits.float(), y, ref, draws)  # losses in float32
            _check_finite(diag, total, len(state["steps"]))
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            state["steps"].append(dict(step=len(state["steps"]), epoch=epoch, loss=float(total.detach()),
                                       grad_norm=float(grad_norm), lr=optimizer.param_groups[0]["lr"], **diag))
        val = group_metrics(predict(net, prepared.features["val"], device), prepared.labels["val"],
                            data.privileged)
        score = val[config.selection]["mAP"]
        # test metrics of every epoch are logged for the audit (what selecting the checkpoint on the test
        # split, as the released code does, would report); they never take part in selection
        audit = group_metrics(predict(net, prepared.features["test"], device), prepared.labels["test"],
                              data.privileged)
        state["epochs"].append(dict(epoch=epoch, **{f"val.{g}.{m}": v for g, d in val.items() for m, v in d.items()},
                                    **{f"audit.test.{g}.{m}": v for g, d in audit.items() for m, v in d.items()}))
        if score > state["best"]:
            state.update(best=score, best_epoch=epoch, bad_epochs=0)
            if writer:
                store.save_checkpoint(folder / "best.safetensors", net.state_dict())
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        bar.set_postfix(val_mAP=f"{score:.4f}", best=state["best_epoch"])
        stop = state["bad_epochs"] >= config.patience
        state["stopped"] = "patience" if stop else "budget"
        if stop:
            state["epoch"] = config.epochs
        all_draws = _gather_states(draws.get_state(), world)
        if writer:
            store.atomic_write(folder / "last.pt", lambda f: torch.save(
                dict(network=net.state_dict(), optimizer=optimizer.state_dict(), objective=objective.state_dict(),
                     draws=all_draws if world > 1 else all_draws[0], state=state), f))
        _barrier(world)
        if stop_after_epoch is not None and epoch == stop_after_epoch:
            raise KeyboardInterrupt(f"stopped after epoch {epoch} (stop_after_epoch)")
        if stop:
            break
    bar.close()

    tensors, _ = store.load_checkpoint(folder / "best.safetensors")
    net.load_state_dict(tensors)
    test_logits = predict(net, prepared.features["test"], device)
    test = group_metrics(test_logits, prepared.labels["test"], data.privileged, per_label=True)
    val_best = group_metrics(predict(net, prepared.features["val"], device), prepared.labels["val"],
                             data.privileged)
    record = dict(
        status=store.FINISHED, run_name=config.run_name, run_dir=folder.relative_to(results_dir).as_posix(),
        config=config.to_dict(), identity=config.identity(),
        data=data.describe(), backbone=prepared.backbone, environment=dict(store.environment_info(), world_size=world),
        reference=ref_record["run_dir"] if ref_record else None, best_epoch=state["best_epoch"],
        epochs_run=len(state["epochs"]), steps_run=len(state["steps"]), stopped=state["stopped"],
        dead_heads=dead_heads(test_logits),
        selection_metric=f"val.{config.selection}.mAP",
        validation=val_best, test=test,
        timings=dict(seconds=time.perf_counter() - started, device=str(device)),
    )
    if rank > 0:  # each rank's own step history (α must agree across ranks), nothing else
        store.save_history(folder / f"steps.rank{rank}.jsonl", state["steps"])
        _barrier(world)
        return record
    # per-image predictions, for paired tests between methods on the same test images
    store.save_checkpoint(folder / "test_logits.safetensors", {"logits": test_logits, "labels": prepared.labels["test"]})
    store.save_history(folder / "steps.jsonl", state["steps"])
    store.save_history(folder / "epochs.jsonl", state["epochs"])
    store.write_record(folder, record)
    (folder / "last.pt").unlink(missing_ok=True)
    _barrier(world)
    return record


# --------------------------------------------------------------------------- data parallelism


def _distributed(config: RunConfig) -> tuple[int, int]:
    """(rank, world size); joins the process group that ``torchrun`` describes in the environment."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if resolve_device(config.device).type == "cuda" else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _mean_over_ranks(losses: Tensor) -> Tensor:
    """Group losses averaged over ranks, so every rank moves α identically."""
    import torch.distributed as dist

    losses = losses.detach().clone()
    dist.all_reduce(losses)
    return losses / dist.get_world_size()


def _gather_states(state: Tensor, world: int) -> list[Tensor]:
    """Every rank's counterpart-generator state, so a resumed data-parallel run redraws the same pairs."""
    if world == 1:
        return [state]
    import torch.distributed as dist

    states = [None] * world
    dist.all_gather_object(states, state)
    return states
