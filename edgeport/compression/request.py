"""Compression asked for on the command line (or the API), merged into a profile's steps.

Each flag replaces the setting of the profile's step of that kind (keeping its other settings) or
adds the step; a level of 0 (or ``--recover none``) removes it. Steps then run in one order:
structured pruning, low-rank factorization, magnitude pruning, and recovery last — recovery trains
what the lossy steps left. A gradual magnitude schedule needs a recovery step after it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Sequence

from ..errors import ConfigError
from ..strict import to_table
from .base import CompressionStep, parse_step

#: the order steps run in (kinds not listed keep their place before recovery)
ORDER = ("channels", "low_rank", "magnitude", "distill")


@dataclass(frozen=True)
class CompressionRequest:
    """Overrides of the profile's compression; ``None`` keeps what the profile says."""

    sparsity: float | None = None
    pruning_scope: str | None = None
    pruning_schedule: str | None = None
    prune_channels: float | None = None
    channel_multiple: int | None = None
    low_rank: float | None = None
    recover: str | None = None
    recover_time: float | None = None
    recover_epochs: int | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


def _merge(steps: list[CompressionStep], kind: str, changes: dict[str, Any], where: str,
           keep: bool, replaces: tuple[str, ...] = ()) -> list[CompressionStep]:
    """``steps`` with the step of ``kind`` changed (added when missing), or removed when not
    ``keep``; ``replaces`` names the step's settings the change makes void (set to null)."""
    current = next((s for s in steps if s.kind == kind), None)
    rest = [s for s in steps if s.kind != kind]
    if not keep:
        return rest
    table = {"kind": kind, **(to_table(current) if current is not None else {}), **changes}
    for key in replaces:
        table.pop(key, None)
    return rest + [parse_step(table, where)]


def merged_steps(profile_steps: Sequence[CompressionStep], request: CompressionRequest | None) -> tuple[CompressionStep, ...]:
    """The profile's steps with ``request`` applied, in :data:`ORDER`, checked as a whole."""
    steps = list(profile_steps)
    r = request or CompressionRequest()
    if r.sparsity is not None or r.pruning_scope is not None or r.pruning_schedule is not None:
        current = next((s for s in steps if s.kind == "magnitude"), None)
        sparsity = r.sparsity if r.sparsity is not None else getattr(current, "sparsity", 0.0)
        changes: dict[str, Any] = {"sparsity": sparsity}
        if r.pruning_scope is not None:
            changes["scope"] = r.pruning_scope
        if r.pruning_schedule is not None:
            changes["schedule"] = r.pruning_schedule
        steps = _merge(steps, "magnitude", changes, "--sparsity / --pruning-scope / --pruning-schedule",
                       keep=sparsity > 0)
    if r.prune_channels is not None or r.channel_multiple is not None:
        current = next((s for s in steps if s.kind == "channels"), None)
        ratio = r.prune_channels if r.prune_channels is not None else getattr(current, "ratio", 0.0)
        changes = {"ratio": ratio}
        if r.channel_multiple is not None:
            changes["channel_multiple"] = r.channel_multiple
        steps = _merge(steps, "channels", changes, "--prune-channels / --channel-multiple", keep=ratio > 0)
    if r.low_rank is not None:
        steps = _merge(steps, "low_rank", {"energy": r.low_rank}, "--low-rank", keep=r.low_rank > 0,
                       replaces=("rank_ratio",))
    if r.recover is not None or r.recover_time is not None or r.recover_epochs is not None:
        current = next((s for s in steps if s.kind == "distill"), None)
        method = r.recover if r.recover is not None else ("none" if current is None else current.method)
        changes = {} if method == "none" else {"method": method}
        if r.recover_time is not None:
            changes["time_s"] = r.recover_time
        if r.recover_epochs is not None:
            changes["epochs"] = r.recover_epochs
        if method == "none" and (r.recover_time is not None or r.recover_epochs is not None):
            raise ConfigError("--recover-time / --recover-epochs given with --recover none" if r.recover == "none"
                              else "--recover-time / --recover-epochs bound a recovery: add --recover kd "
                                   "(or finetune), or a [[compression]] table with kind = \"distill\"")
        steps = _merge(steps, "distill", changes, "--recover / --recover-time / --recover-epochs",
                       keep=method != "none")
    ordered = tuple(sorted(steps, key=lambda s: ORDER.index(s.kind) if s.kind in ORDER else len(ORDER) - 1.5))
    check_order(ordered)
    return ordered


def check_order(steps: Sequence[CompressionStep]) -> None:
    """Refuse a plan whose steps cannot work together."""
    kinds = [s.kind for s in steps]
    for i, s in enumerate(steps):
        if s.kind == "magnitude" and getattr(s, "schedule", "one-shot") == "gradual" and "distill" not in kinds[i + 1:]:
            raise ConfigError("gradual magnitude pruning runs inside recovery: add --recover kd (or a "
                              "[[compression]] table with kind = \"distill\") after it")
    if kinds.count("distill") > 1:
        raise ConfigError("more than one recovery (distill) step")
    if "distill" in kinds and not [k for k in kinds if k != "distill"]:
        raise ConfigError("recovery (distill) has nothing to recover from: add a compression step "
                          "(--prune-channels, --sparsity, --low-rank) before it")
