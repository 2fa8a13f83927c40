"""One trainer for every method and ablation: :func:`train` turns a :class:`~fairpo.run.config.RunConfig` into a run record.

The frozen part of the backbone runs once per data set into the feature cache; a run trains the
backbone's last ``trainable_blocks`` blocks and the per-label heads on those cached features. FairPO
runs compare against their reference — the ``bce`` run of the same data set, seed and label split,
trained on demand — and read the reference's logits from a one-off pass (the reference is frozen and
the inputs fixed, so its logits are too). They start from fresh heads (``init="fresh"``, as the released
code does) or from a copy of the reference (``init="reference"``). Early stopping watches the validation
split's mAP (overall, or privileged with ``selection="privileged"``); the test split is evaluated once,
at the best checkpoint. Every random stream has its own seeded generator (:mod:`fairpo.rng`).

The run folder's files are named and written by :mod:`fairpo.run.store`: the record, the per-step
history, the per-epoch history (validation metrics, and the test metrics of each epoch under
``audit.``, logged for the reproduction audit and never used to select anything), the best weights,
the test split's logits at the best checkpoint and, while the run is unfinished, the resume file.

A step never reads a value back from the device: its diagnostics stay on the device until the epoch
ends, where they are read at once and checked for a non-finite loss.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from fairpo import rng
from fairpo.run import store
from fairpo.data.backbone import PAPER_BACKBONE, TrainedTop, feature_size, load_vit, split_backbone
from fairpo.data.digits import DIGITS_BACKBONE, digits_backbone, digits_backbone_id
from fairpo.method.heads import Network, PerLabelHeads
from fairpo.method.metrics import dead_heads, group_metrics
from fairpo.method.objective import Objective
from fairpo.run import distributed
from fairpo.run.config import RunConfig


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

    On a GPU the cache is float16, and each split that fits in half the GPU's free memory (the training
    split first) is kept on the GPU, the training labels with it (:func:`on_device_if_it_fits`).

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
        # on a GPU the cache is stored in float16 (half the disk; the trainer computes in bfloat16 anyway)
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        features = {name: cached_features(split, encoder.to(device), key=dict(key, split=name),
                                          cache_dir=Path(cache_dir) / "features", device=device, dtype=dtype)
                    for name, split in splits.items()}
        width = feature_size(vit)
    if device.type == "cuda":
        features = on_device_if_it_fits(features, device)
        if features["train"].is_cuda:  # and the training labels with them (metrics read the others)
            labels = dict(labels, train=labels["train"].to(device))
    heads = PerLabelHeads(width, len(data.label_names), generator=rng.generator(*stream(config, "heads")),
                          activation=config.head_activation)
    network = Network(top, heads).to(device)
    return Prepared(data, features, labels, network, backbone)


def on_device_if_it_fits(tensors: dict[str, Tensor], device: torch.device, share: float = 0.5) -> dict[str, Tensor]:
    """Each tensor, in order, moved to the GPU while together they take at most ``share`` of its free
    memory (so an epoch never waits on the disk or the host); the rest stay where they are and are read
    batch by batch. Give the training split first: it is read every step."""
    budget = share * torch.cuda.mem_get_info(device)[0]
    out = {}
    for name, tensor in tensors.items():
        size = tensor.numel() * tensor.element_size()
        if size <= budget:
            out[name], budget = tensor.to(device), budget - size
        else:
            out[name] = tensor
    return out


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


def _check_finite(columns: dict[str, list[float]], first_step: int) -> None:
    """Raise at the first non-finite loss of an epoch (read once, at the epoch's end), naming its group."""
    bad = next((i for i, value in enumerate(columns.get("loss", [])) if not math.isfinite(value)), None)
    if bad is None:
        return
    names = {"loss_P": "privileged", "loss_N": "non-privileged"}
    groups = " and ".join(name for key, name in names.items()
                          if key in columns and not math.isfinite(columns[key][bad]))
    raise FloatingPointError(
        f"non-finite loss at step {first_step + bad} (group: {groups or 'total'}); the run stopped and its last "
        f"good epoch checkpoint ({store.RESUME_FILE}) is kept: lower lr, check the data, then run again to resume")


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
        return _Run(config, folder, results_dir, cache_dir, force_reference, quiet).train(force, stop_after_epoch)
    finally:
        torch.set_num_threads(threads)


class _Run:
    """One run in progress: its data and network, optimizer, objective, generators and state."""

    def __init__(self, config: RunConfig, folder: Path, results_dir, cache_dir, force_reference: bool,
                 quiet: bool) -> None:
        self.config, self.folder, self.results_dir, self.quiet = config, folder, results_dir, quiet
        self.rank, self.world = distributed.join(resolve_device(config.device).type)
        self.writer = self.rank == 0  # under torchrun only rank 0 writes the run folder
        cache_dir = Path(cache_dir) if cache_dir is not None else Path(results_dir) / ".cache"
        device = resolve_device(config.device)
        if device.type == "cuda" and self.world > 1:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        self.device = device
        self.started = time.perf_counter()
        if self.rank > 0:  # rank 0 builds the backbone and feature caches; the others wait, then read them
            distributed.barrier(self.world)
        self.prepared = prepare(config, cache_dir, device)
        if self.rank == 0:
            distributed.barrier(self.world)
        self.data, self.net = self.prepared.data, self.prepared.network
        self.ref_record, self.ref_train = (
            _reference(config, results_dir, cache_dir, self.prepared, device, quiet, force_reference)
            if config.needs_reference else (None, None))
        if self.ref_train is not None:  # the reference's own copy stays frozen; the run trains `net`
            self.ref_train = self.ref_train.to(device)
        self.objective = Objective(config, self.data.privileged, len(self.data.label_names), device=device,
                                   reduce=distributed.mean_over_ranks if self.world > 1 else None,
                                   train_labels=self.prepared.labels["train"])
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        # fused: one kernel for all parameters instead of a loop over them (a fifth of a digits step on a CPU)
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
        self.draws = rng.generator(*stream(config, "draws", self.rank))
        self.state = dict(epoch=0, best=-float("inf"), best_epoch=-1, bad_epochs=0, steps=[], epochs=[])

    def train(self, force: bool, stop_after_epoch: int | None) -> dict:
        from tqdm.auto import tqdm

        self._resume(force)
        config, state = self.config, self.state
        self.model = self.net
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.model = DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        bar = tqdm(range(state["epoch"], config.epochs), desc=config.run_name, disable=self.quiet or not self.writer,
                   leave=False)
        for epoch in bar:
            self._train_epoch(epoch)
            with torch.profiler.record_function("fairpo.evaluate"):
                score = self._validate(epoch)
            bar.set_postfix(val_mAP=f"{score:.4f}", best=state["best_epoch"])
            stop = state["bad_epochs"] >= config.patience
            state["stopped"] = "patience" if stop else "budget"
            if stop:
                state["epoch"] = config.epochs
            with torch.profiler.record_function("fairpo.checkpoint"):
                self._save_resume_point()
            if stop_after_epoch is not None and epoch == stop_after_epoch:
                raise KeyboardInterrupt(f"stopped after epoch {epoch} (stop_after_epoch)")
            if stop:
                break
        bar.close()
        return self._finish()

    def _resume(self, force: bool) -> None:
        """Clear the folder under ``force``; otherwise pick up an interrupted run where it stopped."""
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        if force and self.writer:  # whatever the folder held — a finished run, a damaged one, a checkpoint — goes
            for name in (store.RECORD_FILE, store.RESUME_FILE):
                (folder / name).unlink(missing_ok=True)
        distributed.barrier(self.world)
        if (folder / store.RESUME_FILE).exists():
            saved = torch.load(folder / store.RESUME_FILE, weights_only=True)  # tensors and plain containers: no pickle
            self.net.load_state_dict(saved["network"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.objective.load_state_dict(saved["objective"])
            draws = saved["draws"]
            self.draws.set_state(draws[self.rank] if isinstance(draws, list) else draws)
            self.state = saved["state"]

    def _train_epoch(self, epoch: int) -> None:
        """One pass over the training split in this epoch's order; the step history is read back once."""
        config, device = self.config, self.device
        x_train, y_train = self.prepared.features["train"], self.prepared.labels["train"]
        cuda = device.type == "cuda"
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
        self.model.train()
        order = torch.randperm(len(y_train), generator=rng.generator(*stream(config, "order", epoch)))
        steps = []
        part = torch.profiler.record_function  # named parts of a step, for benchmarks/bench_train.py --profile
        for batch in order.split(config.batch_size):
            with part("fairpo.batch"):
                idx = batch[self.rank::self.world]  # every rank takes its share of the same global batch
                on_device = idx.to(device, non_blocking=True)
                x, y = x_train[idx.to(x_train.device)], y_train[idx.to(y_train.device)]
                if cuda and x.device.type == "cpu":  # a cache too large for the GPU: batches cross from the host
                    x, y = x.pin_memory(), y.pin_memory()
                x = x.to(device, torch.float32, non_blocking=True)
                y = y.to(device, non_blocking=True)
                ref = self.ref_train[on_device] if self.ref_train is not None else None
            with part("fairpo.forward"), autocast:
                logits = self.model(x)
            with part("fairpo.objective"):
                total, diag = self.objective.step(logits.float(), y, ref, self.draws)  # losses in float32
            with part("fairpo.backward"):
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
            with part("fairpo.clip"):
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, config.grad_clip)
            with part("fairpo.optimizer"):
                self.optimizer.step()
            steps.append(dict(loss=total.detach(), grad_norm=grad_norm, **diag))
        first = len(self.state["steps"])
        lr = self.optimizer.param_groups[0]["lr"]
        columns = {key: torch.stack([step[key] for step in steps]).tolist() for key in steps[0]} if steps else {}
        _check_finite(columns, first)
        for i in range(len(steps)):
            row = {key: values[i] for key, values in columns.items()}
            self.state["steps"].append(dict(step=first + i, epoch=epoch, loss=row.pop("loss"),
                                            grad_norm=row.pop("grad_norm"), lr=lr, **row))

    def _validate(self, epoch: int) -> float:
        """Score the epoch on the validation split, keep the best weights, log the audit's test metrics."""
        state, prepared, privileged = self.state, self.prepared, self.data.privileged
        val = group_metrics(predict(self.net, prepared.features["val"], self.device), prepared.labels["val"], privileged)
        score = val[self.config.selection]["mAP"]
        # test metrics of every epoch are logged for the audit (what selecting the checkpoint on the test
        # split, as the released code does, would report); they never take part in selection
        audit = group_metrics(predict(self.net, prepared.features["test"], self.device), prepared.labels["test"],
                              privileged)
        state["epochs"].append(dict(epoch=epoch, **{f"val.{g}.{m}": v for g, d in val.items() for m, v in d.items()},
                                    **{f"audit.test.{g}.{m}": v for g, d in audit.items() for m, v in d.items()}))
        if score > state["best"]:
            state.update(best=score, best_epoch=epoch, bad_epochs=0)
            if self.writer:
                store.save_checkpoint(self.folder / store.CHECKPOINT_FILE, self.net.state_dict())
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        return score

    def _save_resume_point(self) -> None:
        all_draws = distributed.gather_states(self.draws.get_state(), self.world)
        if self.writer:
            saved = dict(network=self.net.state_dict(), optimizer=self.optimizer.state_dict(),
                         objective=self.objective.state_dict(),
                         draws=all_draws if self.world > 1 else all_draws[0], state=self.state)
            store.atomic_write(self.folder / store.RESUME_FILE, lambda f: torch.save(saved, f))
        distributed.barrier(self.world)

    def _finish(self) -> dict:
        """Evaluate the best checkpoint, write the run's files and its record (last), return the record."""
        config, folder, prepared, state, device = self.config, self.folder, self.prepared, self.state, self.device
        tensors, _ = store.load_checkpoint(folder / store.CHECKPOINT_FILE)
        self.net.load_state_dict(tensors)
        test_logits = predict(self.net, prepared.features["test"], device)
        test = group_metrics(test_logits, prepared.labels["test"], self.data.privileged, per_label=True)
        val_best = group_metrics(predict(self.net, prepared.features["val"], device), prepared.labels["val"],
                                 self.data.privileged)
        record = dict(
            status=store.FINISHED, run_name=config.run_name, run_dir=folder.relative_to(self.results_dir).as_posix(),
            config=config.to_dict(), identity=config.identity(),
            data=self.data.describe(), backbone=prepared.backbone,
            environment=dict(store.environment_info(), world_size=self.world),
            reference=self.ref_record["run_dir"] if self.ref_record else None, best_epoch=state["best_epoch"],
            epochs_run=len(state["epochs"]), steps_run=len(state["steps"]), stopped=state["stopped"],
            dead_heads=dead_heads(test_logits),
            selection_metric=f"val.{config.selection}.mAP",
            validation=val_best, test=test,
            timings=dict(seconds=time.perf_counter() - self.started, device=str(device)),
        )
        if self.rank > 0:  # each rank's own step history (α must agree across ranks), nothing else
            store.save_history(folder / store.rank_step_history(self.rank), state["steps"])
            distributed.barrier(self.world)
            return record
        # per-image predictions, for paired tests between methods on the same test images
        store.save_checkpoint(folder / store.TEST_LOGITS_FILE,
                              {"logits": test_logits, "labels": prepared.labels["test"]})
        store.save_history(folder / store.STEP_HISTORY_FILE, state["steps"])
        store.save_history(folder / store.EPOCH_HISTORY_FILE, state["epochs"])
        store.write_record(folder, record)
        (folder / store.RESUME_FILE).unlink(missing_ok=True)
        distributed.barrier(self.world)
        return record
