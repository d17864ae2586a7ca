"""LlamaGen's class-conditional GPT (Sun et al. 2024), written here, with a loader for official checkpoints.

Usage:

    from jacobi_oracle.models.llamagen import LlamaGen, llamagen_config, load_llamagen, save_llamagen

    config = llamagen_config("small", vocab_size=512, num_classes=10, grid_size=16)  # any field overridable
    model = LlamaGen(config)                                # random init (official scheme, output head zeroed)
    logits = model(tokens, class_ids, cfg_dropout=0.1)      # training: [B, L] tokens, [B] ids -> [B, L, V]
    loss = F.cross_entropy(logits.flatten(0, 1), tokens.flatten())
    save_llamagen(model, "ckpt.safetensors")                # or .pt ({"model": state_dict}), official key layout
    model = load_llamagen("c2i_XL_384.pt", llamagen_config("XL", grid_size=24))
    model.logits(condition, key_tokens, key_positions, query_positions, visible)  # spec.model.Model contract

Architecture (their `autoregressive/models/gpt.py`, same state-dict keys):
* slot 0 is the class token `cls_embedding.embedding_table[class]`, a table of num_classes + 1
  rows whose last row is the null class (CFG); slot 1 + p holds the image token at raster
  position p (`tok_embeddings`). The output of slot s predicts the token at position s, so
  the class slot predicts position 0.
* pre-norm blocks: RMSNorm -> attention (fused `wqkv`, optional grouped KV heads, `wo`) and
  RMSNorm -> SwiGLU (`w1`, `w3`, `w2`, hidden = 2/3 * 4 * dim rounded up to `multiple_of`).
* 2D RoPE on interleaved pairs: the first half of each head's pairs rotate with the row, the
  second half with the column, frequencies base^(-2i / (head_dim / 2)). The class slot's
  table entry is all zero (cos = sin = 0), so its query and key are zero, exactly as in the
  official code.

Query contract (spec/model.py): the query for position t is answered by the output of the slot
holding the visible key at position t - 1 (the class slot for t = 0), computed causally over
the keys visible to that query at positions < t (visible later keys cannot influence a
next-token model). Queries whose contexts are prefixes of one common key set share one
sequence, so a causal mask costs one sequence and a row-causal mask one per row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..spec.errors import InvalidParameterError, QueryContextError, ShapeMismatchError
from ..spec.model import check_index_range, check_query_ranges


def round_up(n: int, multiple: int) -> int:
    return n if n % multiple == 0 else n + multiple - n % multiple


@dataclass(frozen=True)
class LlamaGenConfig:
    dim: int
    n_layer: int
    n_head: int
    n_kv_head: int | None = None
    vocab_size: int = 16384
    num_classes: int = 1000
    grid_size: int = 16  # image tokens per side: 16 (256 px), 24 (384 px), 32 (512 px)
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        # Verify the sizes are positive and the heads divide the width
        for name in ("dim", "n_layer", "n_head", "vocab_size", "grid_size", "multiple_of"):
            if getattr(self, name) < 1:
                raise InvalidParameterError(f"LlamaGen {name} must be >= 1, got {getattr(self, name)!r}")
        if self.num_classes < 1:
            raise InvalidParameterError(f"LlamaGen num_classes must be >= 1, got {self.num_classes!r}")
        if self.dim % self.n_head or (self.dim // self.n_head) % 4:
            raise InvalidParameterError(
                f"dim {self.dim} must split into {self.n_head} heads of a size divisible by 4 (2D RoPE)"
            )
        if self.n_head % self.kv_heads:
            raise InvalidParameterError(f"n_head {self.n_head} is not a multiple of n_kv_head {self.n_kv_head}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def ffn_hidden(self) -> int:
        hidden = int(2 * 4 * self.dim / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return round_up(hidden, self.multiple_of)

    @property
    def num_positions(self) -> int:
        return self.grid_size * self.grid_size


# Published sizes (their GPT_models; parameter counts at vocab 16384, 1000 classes).
CONFIGS: dict[str, LlamaGenConfig] = {
    "B": LlamaGenConfig(dim=768, n_layer=12, n_head=12),  # 111M
    "L": LlamaGenConfig(dim=1024, n_layer=24, n_head=16),  # 343M
    "XL": LlamaGenConfig(dim=1280, n_layer=36, n_head=20),  # 775M
    "XXL": LlamaGenConfig(dim=1536, n_layer=48, n_head=24),  # 1.4B
    "3B": LlamaGenConfig(dim=3200, n_layer=24, n_head=32),  # 3.1B
    # tests: a few thousand parameters, a 4x4 grid
    "tiny": LlamaGenConfig(dim=32, n_layer=2, n_head=2, vocab_size=16, num_classes=4, grid_size=4, multiple_of=16),
    # CPU training here: ~3M parameters without embeddings
    "small": LlamaGenConfig(dim=256, n_layer=4, n_head=4, vocab_size=512, num_classes=16, grid_size=16),
}


def llamagen_config(name: str, **overrides: Any) -> LlamaGenConfig:
    """A named configuration with some fields replaced (e.g. grid_size=24, vocab_size=512)."""
    if name not in CONFIGS:
        raise InvalidParameterError(f"unknown LlamaGen config {name!r}; known: {', '.join(CONFIGS)}")
    try:
        return replace(CONFIGS[name], **overrides)
    except TypeError as error:
        raise InvalidParameterError(f"bad LlamaGen config overrides {overrides}: {error}") from error


def compute_rope_table(config: LlamaGenConfig) -> torch.Tensor:
    """[1 + grid^2, head_dim / 2, 2] (cos, sin) per slot; slot 0 (class) is all zero. float64."""
    half = config.head_dim // 2
    freqs = config.rope_base ** (-torch.arange(0, half, 2, dtype=torch.float64)[: half // 2] / half)  # [half/2]
    angle = torch.arange(config.grid_size, dtype=torch.float64)[:, None] * freqs  # [G, half/2]
    g = config.grid_size
    grid = torch.cat([angle[:, None, :].expand(g, g, -1), angle[None, :, :].expand(g, g, -1)], dim=-1)  # [G, G, half]
    table = torch.stack([grid.cos(), grid.sin()], dim=-1).flatten(0, 1)  # [G*G, half, 2]
    return torch.cat([torch.zeros(1, half, 2, dtype=torch.float64), table])


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype RoPE and RMSNorm compute in: float32 for half-precision inputs."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


Rope = torch.Tensor  # cos + i sin: [B or 1, S, 1, D/2], complex in the compute dtype


def apply_rope(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    # x: [B, S, H, D]; rotates interleaved pairs (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin),
    # as one complex product (x0 + i x1)(cos + i sin)
    work = compute_dtype(x.dtype)
    pairs = (x if x.dtype == work else x.to(work)).reshape(*x.shape[:-1], -1, 2)  # [B, S, H, D/2, 2]
    out = torch.view_as_real(torch.view_as_complex(pairs) * rope).flatten(3)
    return out if out.dtype == x.dtype else out.to(x.dtype)


class RMSNorm(nn.Module):
    """The weight of one RMSNorm (official key layout); the computation is `rms_norm`."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x / rms(x) * weight over the last axis, fused; half-precision inputs normalise in float32."""
    if x.dtype == compute_dtype(x.dtype) and weight.dtype == x.dtype:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).type_as(x) * weight


class KVCache:
    """Static per-layer cache: k, v: [B, H_kv, S, D], written by slot index (gpt-fast style)."""

    def __init__(self, batch: int, kv_heads: int, slots: int, head_dim: int, dtype: torch.dtype, device: torch.device):
        shape = (batch, kv_heads, slots, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    def write(self, slots: torch.Tensor | int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # slots: [B, S], or an int: every row writes slots slots .. slots + S - 1; k, v: [B, H_kv, S, D]
        if isinstance(slots, int):  # one contiguous run for the whole batch: a slice copy
            self.k[:, :, slots : slots + k.shape[2]] = k
            self.v[:, :, slots : slots + v.shape[2]] = v
            return self.k, self.v
        index = slots[:, None, :, None].expand_as(k)
        self.k.scatter_(2, index, k)
        self.v.scatter_(2, index, v)
        return self.k, self.v


class Attention(nn.Module):
    """Parameters of one attention layer (fused `wqkv`, `wo`); the computation is `block_step`."""

    def __init__(self, config: LlamaGenConfig) -> None:
        super().__init__()
        c = config
        self.wqkv = nn.Linear(c.dim, (c.n_head + 2 * c.kv_heads) * c.head_dim, bias=False)
        self.wo = nn.Linear(c.dim, c.dim, bias=False)


class FeedForward(nn.Module):
    """Parameters of one SwiGLU layer (`w1`, `w3`, `w2`); the computation is `block_step`."""

    def __init__(self, config: LlamaGenConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(config.dim, config.ffn_hidden, bias=False)
        self.w3 = nn.Linear(config.dim, config.ffn_hidden, bias=False)
        self.w2 = nn.Linear(config.ffn_hidden, config.dim, bias=False)


class TransformerBlock(nn.Module):
    """Parameters of one pre-norm block, in the official key layout."""

    def __init__(self, config: LlamaGenConfig) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.feed_forward = FeedForward(config)
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)

    def weights(self) -> BlockWeights:
        a, f = self.attention, self.feed_forward
        return BlockWeights(
            self.attention_norm.weight,
            a.wqkv.weight,
            a.wo.weight,
            self.ffn_norm.weight,
            f.w1.weight,
            f.w3.weight,
            f.w2.weight,
        )


class BlockWeights(NamedTuple):
    attention_norm: torch.Tensor
    wqkv: torch.Tensor
    wo: torch.Tensor
    ffn_norm: torch.Tensor
    w1: torch.Tensor
    w3: torch.Tensor
    w2: torch.Tensor


def block_step(
    c: LlamaGenConfig,
    w: BlockWeights,
    x: torch.Tensor,
    rope: Rope,
    mask: torch.Tensor | None,
    cache: KVCache | None,
    slots: torch.Tensor | int,
    keys: int | None = None,
) -> torch.Tensor:
    """One block over [B, S, dim] inputs, for training and decoding alike: x + attention(norm(x)),
    then + SwiGLU(norm(.)). `slots`: the inputs' [B, S] cache slots, or an int (KVCache.write).
    Attention: without a cache, mask None is causal over x; with one, each input's key / value
    is written at its slot and attention reads cache slots 0 .. keys - 1 (all when None) under
    `mask` [B or 1, 1, S, K] (every one of them when mask is None)."""
    b, s, _ = x.shape
    heads, kv_heads, d = c.n_head, c.kv_heads, c.head_dim
    qkv = F.linear(rms_norm(x, w.attention_norm, c.norm_eps), w.wqkv).view(b, s, heads + 2 * kv_heads, d)
    qk = apply_rope(qkv[:, :, : heads + kv_heads], rope)  # q and k rotate together
    q, k = qk[:, :, :heads].transpose(1, 2), qk[:, :, heads:].transpose(1, 2)  # [B, H, S, D], [B, H_kv, S, D]
    v = qkv[:, :, heads + kv_heads :].transpose(1, 2)
    if cache is not None:
        k, v = cache.write(slots, k, v)  # [B, H_kv, S_cache, D]
        if keys is not None:  # the filled prefix only (a view)
            k, v = k[:, :, :keys], v[:, :, :keys]
    if kv_heads != heads:
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and cache is None)
    h = x + F.linear(y.transpose(1, 2).reshape(b, s, c.dim), w.wo)
    g = rms_norm(h, w.ffn_norm, c.norm_eps)
    return h + F.linear(F.silu(F.linear(g, w.w1)) * F.linear(g, w.w3), w.w2)


class ClassEmbedding(nn.Module):
    def __init__(self, config: LlamaGenConfig) -> None:
        super().__init__()
        self.embedding_table = nn.Embedding(config.num_classes + 1, config.dim)  # last row: null class


class LlamaGen(nn.Module):
    def __init__(self, config: LlamaGenConfig, initializer_range: float = 0.02) -> None:
        super().__init__()
        self.config = config
        self.cls_embedding = ClassEmbedding(config)
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        self._rope = compute_rope_table(config)  # float64, not in the state dict (nor in theirs)
        self._rope_tables: dict[tuple[torch.dtype, torch.device], Rope] = {}  # per compute dtype
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=initializer_range)
        nn.init.zeros_(self.output.weight)

    # -- spec.model.Model properties -------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def num_positions(self) -> int:
        return self.config.num_positions

    @property
    def token_embeddings(self) -> torch.Tensor:
        return self.tok_embeddings.weight.detach()

    # -- building blocks (also used by accelerated/) --------------------------------------
    def rope(self, slots: torch.Tensor, dtype: torch.dtype = torch.float64) -> Rope:
        """cos + i sin, [..., 1, head_dim / 2] complex in `dtype`, of cache slots (0 = class, 1 + p
        = position p); scratch slots past the grid (accelerated/ padding) reuse the last entry.
        The table is cast once per dtype and device, not per call."""
        key = (dtype, slots.device)
        if key not in self._rope_tables:
            table = self._rope.to(device=slots.device, dtype=dtype)
            self._rope_tables[key] = torch.complex(table[..., 0], table[..., 1])
        return self._rope_tables[key][slots.clamp(max=self.num_positions)][..., None, :]

    def class_index(self, condition: int | None) -> int:
        """Row of the class table: the class, or the null class for None."""
        return self.config.num_classes if condition is None else condition

    def embed(
        self, tokens: torch.Tensor, slots: torch.Tensor, class_ids: torch.Tensor, with_class: bool = True
    ) -> torch.Tensor:
        """[B, S] tokens at [B, S] slots -> [B, S, dim]; slot 0 takes the class embedding of [B]
        ids (`with_class=False`: the caller knows no input is at slot 0)."""
        tok = F.embedding(tokens.clamp(min=0), self.tok_embeddings.weight)
        if not with_class:
            return tok
        cls = self.cls_embedding.embedding_table(class_ids)[:, None, :].expand_as(tok)
        return torch.where((slots == 0)[..., None], cls, tok)

    def run(
        self,
        x: torch.Tensor,
        slots: torch.Tensor,
        mask: torch.Tensor | None,
        caches: list[KVCache] | None = None,
        cache_slots: torch.Tensor | int | None = None,
        keys: int | None = None,
        weights: list[BlockWeights] | None = None,
    ) -> torch.Tensor:
        """Blocks + final norm over [B, S, dim] inputs at [B, S] slots -> [B, S, dim] hidden states.

        With caches, each input's key / value is written at its slot, or at `cache_slots`
        when given (inputs at one position that must not overwrite each other; an int: the
        slots cache_slots .. + S - 1 in every row, written as a slice); attention reads
        cache slots 0 .. keys - 1 (all when None) under `mask` (see Attention.forward).
        `weights`: `block_weights()` gathered once by a caller that runs many steps (the module
        attribute walk costs ~10 us a layer, a tenth of a small model's step)."""
        rope = self.rope(slots, compute_dtype(x.dtype))  # cos, sin: [B, S, 1, D/2]
        write = slots if cache_slots is None else cache_slots
        for i, w in enumerate(self.block_weights() if weights is None else weights):
            x = block_step(self.config, w, x, rope, mask, None if caches is None else caches[i], write, keys)
        return rms_norm(x, self.norm.weight, self.config.norm_eps)

    def block_weights(self) -> list[BlockWeights]:
        """Every block's weights, in order (the parameter tensors themselves, not copies)."""
        return [layer.weights() for layer in cast(list[TransformerBlock], self.layers)]

    def head(self, h: torch.Tensor) -> torch.Tensor:
        logits = F.linear(h, self.output.weight)
        return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits

    def new_caches(self, batch: int, scratch: int = 0) -> list[KVCache]:
        """One static cache per layer: 1 + grid^2 slots (class + every position) + `scratch`."""
        p = self.output.weight
        c = self.config
        size = 1 + c.num_positions + scratch
        return [KVCache(batch, c.kv_heads, size, c.head_dim, p.dtype, p.device) for _ in self.layers]

    # -- training forward ---------------------------------------------------------------
    def forward(
        self,
        tokens: torch.Tensor,
        class_ids: torch.Tensor,
        cfg_dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Teacher forcing: [B, L] tokens, [B] class ids -> [B, L, V]; logits[:, t] predicts tokens[:, t].

        With cfg_dropout > 0 each sample's class is replaced by the null class with that
        probability (classifier-free guidance training)."""
        b, length = tokens.shape
        # Verify the shapes and ranges
        if class_ids.shape != (b,):
            raise ShapeMismatchError(f"class_ids shape {tuple(class_ids.shape)} != (batch,) = ({b},)")
        if not 1 <= length <= self.num_positions:
            raise ShapeMismatchError(f"sequence length {length} is outside 1..{self.num_positions}")
        if not 0.0 <= cfg_dropout <= 1.0:
            raise InvalidParameterError(f"cfg_dropout must be in [0, 1], got {cfg_dropout!r}")
        check_index_range("token", tokens, self.vocab_size)
        check_index_range("class id", class_ids, self.num_classes + 1)
        if cfg_dropout > 0:
            drop = torch.rand(b, generator=generator, device=generator.device if generator else None)
            class_ids = torch.where(drop.to(class_ids.device) < cfg_dropout, self.num_classes, class_ids)
        slots = torch.arange(length, device=tokens.device).expand(b, length)  # class + tokens[:, :-1]
        inputs = torch.cat([tokens.new_zeros(b, 1), tokens[:, :-1]], dim=1)
        return self.head(self.run(self.embed(inputs, slots, class_ids), slots, None))

    # -- spec.model.Model query contract --------------------------------------------------
    @torch.no_grad()
    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        dev = self.output.weight.device
        key_tokens, key_positions = key_tokens.to(dev), key_positions.to(dev)
        query_positions, visible = query_positions.to(dev), visible.to(dev)
        check_query_ranges(self, key_tokens, key_positions, query_positions)
        context = visible & (key_positions[None, :] < query_positions[:, None])  # [Q, N]
        answer_slot = self.answer_slots(context, key_positions, query_positions)  # [Q] in 0..N
        rows, row_of = self.shared_rows(context, key_positions, query_positions)  # [R, N], [Q]
        n = key_tokens.numel()
        # sequence per row: [class, key_0 .. key_{N-1}]; slots: 0 and 1 + position
        slots = torch.cat([key_positions.new_zeros(1), key_positions + 1])[None].expand(rows.shape[0], n + 1)
        tokens = torch.cat([key_tokens.new_zeros(1), key_tokens])[None].expand_as(slots)
        class_ids = torch.full((rows.shape[0],), self.class_index(condition), device=dev)
        mask = self._row_mask(rows, key_positions)  # [R, 1, N + 1, N + 1]
        h = self.run(self.embed(tokens, slots, class_ids), slots, mask)  # [R, N + 1, dim]
        return self.head(h[row_of, answer_slot])

    def answer_slots(
        self, context: torch.Tensor, key_positions: torch.Tensor, query_positions: torch.Tensor
    ) -> torch.Tensor:
        """[Q] slot answering each query in the sequence [class, key_0 .. key_{N-1}]: 0 for the
        class slot (position 0), 1 + k for the visible key k at position t - 1."""
        previous = context & (key_positions[None, :] == query_positions[:, None] - 1)  # [Q, N]
        count = previous.sum(dim=1)
        # Verify every query t > 0 sees exactly one key at t - 1 (the slot that answers it)
        bad = (query_positions > 0) & (count != 1)
        if bool(bad.any()):
            q = int(bad.nonzero()[0, 0])
            t = int(query_positions[q])
            raise QueryContextError(
                f"query {q} for position {t} sees {int(count[q])} keys at position {t - 1}; a next-token model "
                "answers it from exactly one visible key there"
            )
        if previous.shape[1] == 0:  # no keys: every query is for position 0
            return torch.zeros_like(query_positions)
        return torch.where(query_positions > 0, previous.to(torch.long).argmax(dim=1) + 1, 0)

    def shared_rows(
        self, context: torch.Tensor, key_positions: torch.Tensor, query_positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Group queries whose contexts are the prefixes (positions < t) of one key set."""
        rows: list[torch.Tensor] = []
        row_of = [0] * context.shape[0]
        for q in sorted(range(context.shape[0]), key=lambda i: -int(query_positions[i])):
            before = key_positions < query_positions[q]
            for r, row in enumerate(rows):
                if torch.equal(row & before, context[q]):
                    row_of[q] = r
                    break
            else:
                positions = key_positions[context[q]]
                # Verify the context is a sequence: one key per position
                if torch.unique(positions).numel() != positions.numel():
                    raise QueryContextError(f"query {q} sees two keys at one position: {sorted(positions.tolist())}")
                row_of[q] = len(rows)
                rows.append(context[q])
        if not rows:
            rows.append(torch.zeros_like(key_positions, dtype=torch.bool))
        return torch.stack(rows), torch.tensor(row_of, dtype=torch.long, device=context.device)

    @staticmethod
    def _row_mask(rows: torch.Tensor, key_positions: torch.Tensor) -> torch.Tensor:
        # attend[r, i, j]: slot i reads slot j; keys of row r read earlier keys of row r and the class slot
        r, n = rows.shape
        order = key_positions[None, :] <= key_positions[:, None]  # [N, N]
        attend = torch.zeros(r, n + 1, n + 1, dtype=torch.bool, device=rows.device)
        attend[:, 1:, 1:] = rows[:, :, None] & rows[:, None, :] & order
        attend[:, :, 0] = True
        attend |= torch.eye(n + 1, dtype=torch.bool, device=rows.device)  # slots outside the row: themselves
        return attend[:, None]


# -- checkpoints in the official layout ------------------------------------------------------
_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """An official checkpoint's state dict: .safetensors, or a torch file with a "model" key
    (their training script; "module" / "state_dict" also accepted) or a bare state dict."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict):
        raise InvalidParameterError(f"checkpoint {str(path)!r} holds a {type(loaded).__name__}, not a dict")
    for wrapper in ("model", "module", "state_dict"):
        if wrapper in loaded and isinstance(loaded[wrapper], dict):
            loaded = loaded[wrapper]
            break
    state: dict[str, torch.Tensor] = {}
    for key, value in loaded.items():
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        if isinstance(value, torch.Tensor):
            state[key] = value
    return state


def load_llamagen(path: str | Path, config: LlamaGenConfig, dtype: torch.dtype = torch.float32) -> LlamaGen:
    """A LlamaGen with the weights of an official checkpoint at a local path (nothing is downloaded)."""
    state = read_state_dict(path)
    model = LlamaGen(config).to(dtype)  # cast first: load_state_dict copies into this dtype
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected) - {"freqs_cis"})
    # Verify the keys and shapes match the config
    if missing or unexpected:
        raise ShapeMismatchError(
            f"checkpoint {str(path)!r} does not fit config {config}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise ShapeMismatchError(
                f"checkpoint {str(path)!r}: {key} has shape {tuple(state[key].shape)}, "
                f"config needs {tuple(value.shape)}"
            )
    model.load_state_dict({k: state[k] for k in expected})
    return model.eval().requires_grad_(False)


def save_llamagen(model: LlamaGen, path: str | Path) -> None:
    """Write the official layout: .safetensors, or a torch file {"model": state_dict}."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"model": state}, str(path))


def count_parameters(config: LlamaGenConfig) -> int:
    """Exact parameter count of a config, without building it."""
    c = config
    per_layer = c.dim * (c.n_head + 2 * c.kv_heads) * c.head_dim + c.dim * c.dim + 3 * c.dim * c.ffn_hidden + 2 * c.dim
    embeddings = (c.num_classes + 1) * c.dim + 2 * c.vocab_size * c.dim
    return c.n_layer * per_layer + embeddings + c.dim


__all__ = [
    "CONFIGS",
    "LlamaGen",
    "LlamaGenConfig",
    "apply_rope",
    "compute_rope_table",
    "count_parameters",
    "llamagen_config",
    "load_llamagen",
    "read_state_dict",
    "save_llamagen",
]
