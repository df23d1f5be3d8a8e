"""dcp.hf: a transformers Llama with attn_implementation="dcp" gives the same logits as with
"sdpa" (one causal sequence, one rank, CPU reference executor). Skipped without transformers."""

import pytest

torch = pytest.importorskip("torch")

import dcp  # noqa: E402


def test_llama_with_dcp_attention_matches_sdpa():
    transformers = pytest.importorskip("transformers", reason="transformers not installed: dcp.hf untested here")
    import dcp.hf

    dcp.hf.register()
    cfg = transformers.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(0)
    ref = transformers.LlamaForCausalLM(cfg).eval()
    cfg_dcp = transformers.LlamaConfig(**cfg.to_dict())
    cfg_dcp._attn_implementation = "dcp"
    model = transformers.LlamaForCausalLM(cfg_dcp).eval()
    model.load_state_dict(ref.state_dict())
    n = 37
    ids = torch.randint(0, 50, (1, n))
    pos = torch.arange(n)[None]
    plan = dcp.Planner(1, heads=4, kv_heads=2, head_dim=8, dtype="f32", block_size=16).plan([n])
    with torch.no_grad():
        want = ref(input_ids=ids, position_ids=pos).logits
        got = model(input_ids=ids, position_ids=pos, dcp_plan=plan, dcp_rank=0).logits
    assert (got - want).abs().max().item() < 1e-4
    with pytest.raises(dcp.InvalidSpecError, match="dcp_plan"):
        model(input_ids=ids, position_ids=pos)
