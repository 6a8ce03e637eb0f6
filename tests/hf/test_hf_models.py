"""HFCompat against transformers' own PyTorch models: logits, KV-cache generation, export, loading."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hfhelp import FAMILIES, VOCAB, make_checkpoint, torch_logits

from theseus.errors import TheseusError
from theseus.export import hf_checkpoint
from theseus.inference import generate_cached
from theseus.model.hf.writer import write_checkpoint
from theseus.model.huggingface import HFCompat
from theseus.model.models import GPT

# three rows of 12 tokens; the last two are left-padded (4 and 7 padding columns)
IDX = np.random.default_rng(0).integers(0, VOCAB, (3, 12))
MASK = np.ones((3, 12), dtype=bool)
MASK[1, :4] = False
MASK[2, :7] = False
POSITIONS = np.maximum(np.cumsum(MASK, axis=1) - 1, 0)
PROMPTS = [[5, 9, 17, 3, 44, 8], [7, 8], [100, 2, 3]]


def theseus_logits(model, params, idx=IDX, mask=MASK):
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    out = model.apply({"params": params}, jnp.asarray(idx), positions=jnp.asarray(positions), mask=jnp.asarray(mask))
    return np.asarray(out)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_logits_equal_transformers_with_left_padding_and_after_export(family, checkpoint, tmp_path):
    folder = checkpoint(family)
    model = HFCompat(id=str(folder), block_size=32)
    params = model.pretrained_params()
    ours = theseus_logits(model, params)
    theirs = torch_logits(folder, IDX, MASK.astype(np.int64))
    assert np.abs(theirs[MASK]).max() > 1.0  # the weights are spread out enough to matter
    np.testing.assert_allclose(ours[MASK], theirs[MASK], atol=1e-4, rtol=0)

    config, tensors, copies = hf_checkpoint(model, params)
    write_checkpoint(tmp_path / "export", config, tensors, copies)
    again = torch_logits(tmp_path / "export", IDX, MASK.astype(np.int64))
    np.testing.assert_allclose(ours[MASK], again[MASK], atol=1e-4, rtol=0)
    assert (tmp_path / "export" / "tokenizer.json").is_file()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_greedy_kv_cache_generation_equals_transformers_generate(family, checkpoint):
    import torch
    from transformers import AutoModelForCausalLM

    folder = checkpoint(family)
    model = HFCompat(id=str(folder), block_size=32)
    ours = [g.tokens for g in generate_cached(model, model.pretrained_params(), PROMPTS, 8)]

    reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    width = max(len(p) for p in PROMPTS)
    ids = np.zeros((len(PROMPTS), width), np.int64)
    attention = np.zeros_like(ids)
    for i, prompt in enumerate(PROMPTS):
        ids[i, width - len(prompt) :] = prompt
        attention[i, width - len(prompt) :] = 1
    reference.generation_config.eos_token_id = None  # random weights: never stop early
    with torch.no_grad():
        out = reference.generate(
            input_ids=torch.tensor(ids), attention_mask=torch.tensor(attention), max_new_tokens=8,
            do_sample=False, pad_token_id=0,
        )
    assert ours == out[:, width:].tolist()


def test_bf16_sharded_checkpoint_loads_exactly_in_both_dtypes_and_shards_over_the_mesh(tmp_path, tokenizer_dir):
    import ml_dtypes
    from jax.sharding import Mesh, NamedSharding

    from theseus.base.axis import Axis
    from theseus.training.sharding import param_shardings

    folder = make_checkpoint("llama", tmp_path / "bf16", tokenizer_dir, dtype="bfloat16", max_shard_size="40KB")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1  # really split over several files

    bf16 = HFCompat(id=str(folder), block_size=32, param_dtype="bfloat16")
    f32 = HFCompat(id=str(folder), block_size=32)
    low, high = bf16.pretrained_params(), f32.pretrained_params()
    q = ("model", "layers", "1", "self_attn", "q_proj", "weight")

    def leaf(tree):
        for key in q:
            tree = tree[key]
        return tree

    assert leaf(low).dtype == jnp.bfloat16 and leaf(high).dtype == jnp.float32
    stored = f32.checkpoint.tensor("model.layers.1.self_attn.q_proj.weight")
    assert stored.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(np.asarray(leaf(low)), stored)
    np.testing.assert_array_equal(np.asarray(leaf(high)), stored.astype(np.float32))
    np.testing.assert_allclose(
        theseus_logits(f32, high)[MASK], torch_logits(folder, IDX, MASK.astype(np.int64))[MASK], atol=1e-4, rtol=0
    )

    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), (Axis.BATCH.value, Axis.SHARD.value))
    sharded = f32.pretrained_params(param_shardings(f32, mesh, (1, 8)))
    weight = leaf(sharded)
    assert isinstance(weight.sharding, NamedSharding) and weight.sharding.spec[0] == Axis.SHARD.value
    assert weight.addressable_shards[0].data.shape == (weight.shape[0] // 2, weight.shape[1])
    np.testing.assert_array_equal(np.asarray(weight), np.asarray(leaf(high)))


def test_a_vocabulary_the_mesh_does_not_divide_is_replicated(tmp_path):
    from jax.sharding import Mesh

    from theseus.base.axis import Axis
    from theseus.training.sharding import param_shardings

    folder = make_checkpoint("gpt2", tmp_path / "odd", vocab=VOCAB + 1)
    model = HFCompat(id=str(folder), block_size=32)
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), (Axis.BATCH.value, Axis.SHARD.value))
    shardings = param_shardings(model, mesh, (1, 8))
    assert tuple(shardings["transformer"]["wte"]["weight"].spec) == (None, None)
    assert shardings["transformer"]["h"]["0"]["mlp"]["c_fc"]["weight"].spec[1] == Axis.SHARD.value
    params = model.pretrained_params(shardings)
    np.testing.assert_allclose(theseus_logits(model, params)[MASK], torch_logits(folder, IDX, MASK.astype(np.int64))[MASK],
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "settings",
    [
        {},  # rope, layernorm, gelu: GPT-NeoX
        {"mlp": "swiglu", "norm": "rmsnorm", "bias": True, "tie_embeddings": False},  # Llama
        {"position": "learned", "bias": True, "scan_layers": False},  # GPT-2
    ],
    ids=["gpt_neox", "llama", "gpt2"],
)
def test_native_gpt_exports_to_the_transformers_class_of_its_architecture(settings, tmp_path):
    model = GPT(n_layers=2, n_embd=32, n_head=4, block_size=16, vocab_size=VOCAB, init_std=0.2, **settings)
    params = model.init(jax.random.key(1), jnp.zeros((1, 12), jnp.int32))["params"]
    params = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.key(2), x.shape), params)
    config, tensors, _ = hf_checkpoint(model, params)
    write_checkpoint(tmp_path / "gpt", config, tensors)
    idx = IDX[:1]
    ours = np.asarray(model.apply({"params": params}, jnp.asarray(idx)))
    np.testing.assert_allclose(ours, torch_logits(tmp_path / "gpt", idx), atol=1e-4, rtol=0)


def test_a_gpt_without_a_transformers_twin_is_refused():
    model = GPT(n_layers=1, n_embd=32, n_head=4, block_size=16, vocab_size=64, mlp="swiglu")
    params = model.init(jax.random.key(0), jnp.zeros((1, 4), jnp.int32))["params"]
    with pytest.raises(TheseusError, match="no transformers class has this GPT's architecture"):
        hf_checkpoint(model, params)


@pytest.mark.parametrize(
    "rope",
    [
        {"rope_type": "default", "rope_theta": 500.0, "partial_rotary_factor": 0.5},
        {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
        {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 8.0, "original_max_position_embeddings": 64},
        {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 64,
         "mscale": 1.0, "mscale_all_dim": 0.5, "beta_fast": 16, "truncate": False},
    ],
    ids=["partial", "linear", "llama3", "yarn", "yarn-mscale"],
)
def test_rope_frequencies_equal_transformers(rope):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from theseus.model.hf.architecture import parse_architecture

    settings = dict(hidden_size=64, num_attention_heads=2, num_hidden_layers=1, intermediate_size=32,
                    vocab_size=32, max_position_embeddings=256, rope_parameters=dict(rope))
    reference = LlamaConfig(**settings)
    if rope["rope_type"] == "default":
        inv_freq = 1.0 / rope["rope_theta"] ** (np.arange(0, 16, 2, dtype=np.float32) / 16)
        factor = 1.0
    else:
        inv_freq, factor = ROPE_INIT_FUNCTIONS[rope["rope_type"]](reference, "cpu")
        inv_freq = inv_freq.numpy()
    ours = parse_architecture({"model_type": "llama", **settings}, "config.json").rope
    np.testing.assert_allclose(np.asarray(ours.inv_freq), inv_freq, rtol=1e-6)
    assert ours.attention_factor == pytest.approx(factor)


def test_unsupported_model_type_and_unreachable_hub_id_are_clear_errors(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 10}))
    with pytest.raises(TheseusError, match=r"model_type 'bert' is not supported; theseus runs gpt2, gpt_neox, llama"):
        HFCompat(id=str(tmp_path)).vocab_size  # noqa: B018
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hub"))
    with pytest.raises(TheseusError, match="acme/tiny-llama is not a local folder and the hub cannot provide it"):
        HFCompat(id="acme/tiny-llama").vocab_size  # noqa: B018


# the three distinct networks (Mistral and Qwen2 train through Llama's code; the CLI tests
# compare a 4x2 mesh with one device on Llama)
@pytest.mark.parametrize("family", ["qwen3", "gpt2", "gpt_neox"])
def test_a_few_finetuning_steps_on_a_4x2_mesh_lower_the_loss(family, checkpoint):
    import optax

    from theseus.base.hardware import make_mesh
    from theseus.training.sharding import microbatches, shard_batch
    from theseus.training.step import TrainState, make_train_step, train_state_shardings

    model = HFCompat(id=str(checkpoint(family)), block_size=16)
    tokens = np.random.default_rng(3).integers(0, VOCAB, (8, 17)).astype(np.int32)
    tx, mesh = optax.adam(3e-3), make_mesh(2)
    shardings = train_state_shardings(model, tx, mesh, (1, 16))
    state = jax.jit(lambda p: TrainState.create(p, tx), out_shardings=shardings)(
        model.pretrained_params(shardings.params)
    )
    step = make_train_step(model, tx, mesh=mesh, state_shardings=shardings)
    batch = shard_batch(microbatches({"x": tokens[:, :-1], "y": tokens[:, 1:]}, 1), mesh)
    losses = []
    for _ in range(3):
        state, metrics = step(state, batch, jax.random.key(0))
        losses.append(float(metrics["loss"]))
    assert losses[2] < losses[1] < losses[0]


BLOCKED = """
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "safetensors"):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, Blocked())
import jax.numpy as jnp
from theseus.export import hf_checkpoint
from theseus.model.hf.writer import write_checkpoint
from theseus.model.huggingface import HFCompat
from theseus.data.tokenizer import tokenizer_in

model = HFCompat(id=sys.argv[1], block_size=16)
params = model.pretrained_params()
print(model.apply({"params": params}, jnp.zeros((1, 4), jnp.int32)).shape)
ids, mask = tokenizer_in(model.checkpoint.path).encode_chat([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
print(sum(mask) > 0)
write_checkpoint(__import__("pathlib").Path(sys.argv[2]), *hf_checkpoint(model, params))
"""


def test_loading_running_chat_templates_and_export_need_neither_torch_nor_transformers(checkpoint, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", BLOCKED, str(checkpoint("llama")), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["(1,", "4,", f"{VOCAB})", "True"]
    assert (tmp_path / "out" / "model.safetensors").is_file()
