"""Hugging Face ``transformers`` integration: ``attn_implementation="dcp"``.

    import dcp.hf
    dcp.hf.register()                      # once, before building the model
    model = LlamaForCausalLM(config)       # with config._attn_implementation = "dcp"
    out = model(input_ids=ids_r[None], position_ids=pos_r[None], dcp_plan=plan, dcp_rank=rank)

The model sees one "sequence" per rank: the rank's tokens in the plan's layout (batch size 1),
with ``position_ids`` from the plan. The plan carries every sequence's mask, so no attention mask
is built (the registered mask function returns None). Attention runs through
:func:`dcp.torch.attention`; the softmax scale must be the default ``1/sqrt(head_dim)`` and
attention dropout 0.
"""

from __future__ import annotations

import math

from . import InvalidSpecError, UnsupportedError


def dcp_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                          dcp_plan=None, dcp_rank=0, **kwargs):
    """transformers attention function: query [1, heads, n, D], key/value [1, kv_heads, n, D]
    → ([1, n, heads, D], None)."""
    from . import torch as dtorch

    if dcp_plan is None:
        raise InvalidSpecError("attn_implementation='dcp' needs dcp_plan= (and dcp_rank=) in the model's forward call")
    if query.shape[0] != 1:
        raise UnsupportedError(f"dcp attention takes batch size 1 (the rank's packed tokens), got {query.shape[0]}")
    d = query.shape[-1]
    if scaling is not None and not math.isclose(scaling, d**-0.5, rel_tol=1e-6):
        raise UnsupportedError(f"dcp attention uses the scale 1/sqrt({d}); the model asks for {scaling}")
    if dropout:
        raise UnsupportedError(f"dcp attention has no attention dropout (got {dropout})")
    q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))
    o = dtorch.attention(q, k, v, dcp_plan, dcp_rank)
    return o.unsqueeze(0), None


def _no_mask(*args, **kwargs):
    return None


def register(name: str = "dcp") -> None:
    """Registers ``name`` as an attention implementation (and a mask function that builds none)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(name, dcp_attention_forward)
    AttentionMaskInterface.register(name, _no_mask)
