"""Loading RAFT weights: the official checkpoints (``raft-things.pth``, ``raft-small.pth``), plain state dicts and
the widened state dict of DA-Flow's hybrid RAFT (paper Eq. 16). Layout facts in ``docs/models.md``.

The official files carry every key with a ``module.`` prefix (saved from ``nn.DataParallel``) and the stride-2
residual blocks' third norm twice (``norm3`` and ``downsample.1``); :class:`~daflow.models.raft.RAFT` registers
the alias as the official code does, so the official file loads strictly with its 179 entries.
"""

from __future__ import annotations

import torch

from daflow.models.raft import RAFT
from daflow.models.weights import load_strict
from daflow.models.weights import read_state_dict as read_checkpoint

GRU_CONVS = tuple(f"update_block.gru.conv{g}{k}" for g in "zrq" for k in "12")
GRU_CONVS_SMALL = tuple(f"update_block.gru.conv{g}" for g in "zrq")


RAFT_PUBLISHED = "the official raft-things.pth comes from https://github.com/princeton-vl/RAFT, download_models.sh"


def read_state_dict(path_or_state_dict) -> dict[str, torch.Tensor]:
    """A RAFT checkpoint file (official ``.pth`` with ``module.``, or safetensors) or a state dict, prefix stripped."""
    return read_checkpoint(path_or_state_dict, what="RAFT", published=RAFT_PUBLISHED)


def hybrid_state_dict_from_raft(sd: dict[str, torch.Tensor], extra_context_dim: int) -> dict[str, torch.Tensor]:
    """Widen the GRU convs of a RAFT state dict (large: the six ``convz1 … convq2``; small: ``convz/r/q``) for
    ``extra_context_dim`` extra context channels.

    Input columns are laid out ``[h (hidden), inp (context), extra (c′), motion (128 large / 82 small)]``: old columns
    keep their meaning and the inserted ones are zero, so at initialisation the hybrid model equals RAFT whatever extra
    context it is given (and, with zero extra features and the RAFT correlation scale, exactly RAFT).
    """
    if extra_context_dim == 0:
        return dict(sd)
    large = f"{GRU_CONVS[0]}.weight" in sd
    names, motion = (GRU_CONVS, 128) if large else (GRU_CONVS_SMALL, 82)
    out = dict(sd)
    for name in names:
        key = f"{name}.weight"
        if key not in sd:
            raise ValueError(f"state dict has no {key}: not a RAFT checkpoint")
        w = sd[key]
        split = w.shape[1] - motion  # hidden + context columns come first, motion features last
        zeros = w.new_zeros(w.shape[0], extra_context_dim, *w.shape[2:])
        out[key] = torch.cat([w[:, :split], zeros, w[:, split:]], dim=1)
    return out


def load_raft(path_or_state_dict, **options) -> RAFT:
    """Build RAFT (``options``: :class:`~daflow.models.raft.RAFT`'s arguments) and load weights strictly.

    Accepts the official checkpoint (``module.`` prefix and the duplicated ``norm3`` / ``downsample.1`` entries)
    or a plain state dict, of plain RAFT (widened for the hybrid model by :func:`hybrid_state_dict_from_raft`)
    or of an already hybrid model.
    """
    sd = read_state_dict(path_or_state_dict)
    model = RAFT(**options)
    small, extra_context_dim = model.small, options.get("extra_context_dim", 0)
    expected = model.state_dict()
    probe = f"{(GRU_CONVS_SMALL if small else GRU_CONVS)[0]}.weight"
    if extra_context_dim and probe in sd and sd[probe].shape[1] != expected[probe].shape[1]:
        sd = hybrid_state_dict_from_raft(sd, extra_context_dim)
    return load_strict(model, sd, what="RAFT-small" if small else "RAFT-large")
