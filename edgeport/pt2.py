"""Loading a ``torch.export`` ``.pt2`` archive as data, never as code.

``torch.export.load`` unpickles parts of the archive and falls back to the full unpickler when the
weights-only one refuses, so a crafted file can run code. Here the archive is read once into
memory (bounded), every pickled member must load with the weights-only unpickler, and members that
only the full unpickler reads (pickled weights or constants, custom and opaque objects, legacy
layouts) are refused with a named error before torch sees the file. The bytes checked are the
bytes loaded: the archive is handed to torch from memory.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

#: a .pt2 larger than this is refused (it is read into memory to be checked and loaded)
MAX_PT2_BYTES = 4 << 30
MAX_MEMBERS = 100_000


def load_pt2(path: Path) -> tuple[Any, tuple[Any, ...], tuple[str, ...]]:
    """(module, example inputs, input names) of the program at ``path``; refuses anything but
    plain data. The names are the program's user inputs — the exported ``forward()``'s argument
    names — or empty when they do not match the example inputs one to one."""
    size = path.stat().st_size
    if size > MAX_PT2_BYTES:
        raise ModelLoadError(f"{path.name} is {size} bytes; .pt2 files over {MAX_PT2_BYTES} bytes are refused")
    blob = path.read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ModelLoadError(f"{path.name} is not a torch.export archive (not a zip file)") from exc
    if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > 4 * MAX_PT2_BYTES:
        raise ModelLoadError(f"{path.name}: the archive declares too many or too large members")
    _refuse_code(path.name, archive)
    import torch

    try:
        ep = torch.export.load(io.BytesIO(blob))
    except Exception as exc:
        from .errors import one_line

        raise ModelLoadError(f"{path.name} is not a readable torch.export program: {one_line(exc)}") from exc
    args = ep.example_inputs[0] if ep.example_inputs else None
    if not args:
        raise ModelLoadError(f"{path.name} carries no example inputs; save it with torch.export.save")
    names = tuple(str(n) for n in ep.graph_signature.user_inputs)
    return exported_module(ep.module()), tuple(args), names if len(names) == len(args) else ()


def _refuse_code(name: str, archive: zipfile.ZipFile) -> None:
    """Refuse every member the full unpickler would read; check the rest with the weights-only one."""
    import torch

    for info in archive.infolist():
        member = info.filename
        if member.endswith("_config.json") and ("/data/weights/" in member or "/data/constants/" in member):
            try:
                config = json.loads(archive.read(member)).get("config", {})
            except (ValueError, AttributeError) as exc:
                raise ModelLoadError(f"{name}: {member} is not valid JSON") from exc
            for fqn, meta in (config.items() if isinstance(config, dict) else ()):
                meta = meta if isinstance(meta, dict) else {}
                path_name = str(meta.get("path_name", ""))
                if meta.get("use_pickle") or not path_name.startswith(("weight_", "tensor_")):
                    raise ModelLoadError(f"{name}: {fqn!r} is stored as a pickled object, which could run code "
                                         "when loaded; edgeport loads only tensor data from .pt2 files")
        elif member.endswith((".pt", ".pkl")):
            try:
                torch.load(io.BytesIO(archive.read(member)), weights_only=True)
            except Exception as exc:
                raise ModelLoadError(f"{name}: {member} holds objects beyond tensors and plain data, which "
                                     "could run code when loaded; refused") from exc


def exported_module(graph_module: Any) -> Any:
    """The program as an ``nn.Module`` whose ``eval()``/``train()`` are accepted: its mode was
    fixed when it was exported (``ep.module()`` itself refuses ``eval()``)."""
    import torch

    class ExportedProgramModule(torch.nn.Module):
        def __init__(self, gm: Any) -> None:
            super().__init__()
            self.program = gm

        def forward(self, *args: Any) -> Any:
            return self.program(*args)

        def train(self, mode: bool = True) -> "ExportedProgramModule":
            return self

    return ExportedProgramModule(graph_module)
