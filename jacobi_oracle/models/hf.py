"""Hugging Face transformers image generators behind the spec.Model contract (optional extra `hf`).

    janus_model(JanusForConditionalGeneration, prompts, null_prompt, num_positions)
    emu3_model(Emu3ForConditionalGeneration, image_token_ids, end_of_row_id, prompts, null_prompt, num_positions)
    lumina_mgpt_model(ChameleonForConditionalGeneration, prompts, null_prompt, height, width)

Our vocabulary is the image codebook, 0 .. V-1 (code c is LM id `image_token_ids[c]`), plus,
for layouts with end-of-row tokens (Emu3, Lumina-mGPT), one extra id V that stands for the LM's
end-of-row token. A condition is an index into `prompts` (LM ids placed before the image); None
is `null_prompt` (the unconditional branch of CFG). Sequence position p of the image sits at
LM position len(prompt) + p.

Query contract, as for LlamaGen: the query for position t is answered by the LM output at the
slot of the visible key at position t - 1 (the last prompt slot for t = 0), computed over the
visible keys at positions < t. Queries whose contexts are prefixes of one key set share one
row; rows are compacted (only their keys), right-padded and run as one batch with explicit
position ids. Logits are restricted to image codes: the end-of-row column (never sampled at an
image cell) gets a finite logit of `MASKED_LOGIT`, probability 0 after softmax in float64.

Janus generates through its generation head: image codes are embedded by
`generation_embeddings` + `generation_aligner` and scored by `generation_head`. Emu3 and the
Chameleon family (Lumina-mGPT) are plain causal LMs whose image codes are ids in the text vocab.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..spec.errors import InvalidParameterError, QueryContextError
from ..spec.model import check_query_ranges

MASKED_LOGIT = -1.0e9
LUMINA_IMAGE_IDS = range(4, 8196)  # Lumina-mGPT / Chameleon VQ image token ids
LUMINA_END_OF_ROW = 8803


class HFImageModel:
    """A transformers model seen through spec.Model (see module docstring)."""

    def __init__(
        self,
        embed_prompt: Callable[[torch.Tensor], torch.Tensor],
        embed_image: Callable[[torch.Tensor], torch.Tensor],
        backbone: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        head: Callable[[torch.Tensor], torch.Tensor],
        image_vocab: int,
        prompts: Sequence[Sequence[int]],
        null_prompt: Sequence[int],
        num_positions: int,
        has_end_of_row: bool,
    ) -> None:
        # Verify every prompt is non-empty (slot t = 0 is answered by the last prompt slot)
        if not null_prompt or any(not p for p in prompts):
            raise InvalidParameterError("every prompt, and the null prompt, needs at least one token")
        if image_vocab < 1 or num_positions < 1:
            raise InvalidParameterError(
                f"image_vocab and num_positions must be >= 1, got {image_vocab}, {num_positions}"
            )
        self.embed_prompt = embed_prompt
        self.embed_image = embed_image
        self.backbone = backbone
        self.head = head
        self.image_vocab = image_vocab
        self.prompts = [list(p) for p in prompts]
        self.null_prompt = list(null_prompt)
        self.num_positions = num_positions
        self.has_end_of_row = has_end_of_row

    @property
    def vocab_size(self) -> int:
        return self.image_vocab + (1 if self.has_end_of_row else 0)

    @property
    def num_classes(self) -> int:
        return len(self.prompts)

    @property
    def end_of_row_token(self) -> int | None:
        """Our id of the end-of-row token (for `Layout(end_of_row_token=...)`)."""
        return self.image_vocab if self.has_end_of_row else None

    @torch.no_grad()
    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        prompt = self.null_prompt if condition is None else self.prompts[condition]
        check_query_ranges(self, key_tokens, key_positions, query_positions)
        context = visible & (key_positions[None, :] < query_positions[:, None])  # [Q, N]
        rows, row_of = shared_rows(context, key_positions, query_positions)  # [R, N], [Q]
        hidden = self._run_rows(prompt, rows, key_tokens, key_positions)  # [R, P + N, D]
        slots = answer_slots(rows, row_of, context, key_positions, query_positions, len(prompt))
        logits = self.head(hidden[row_of, slots]).to(torch.float64)  # [Q, image_vocab]
        if self.has_end_of_row:
            logits = torch.cat([logits, torch.full_like(logits[:, :1], MASKED_LOGIT)], dim=1)
        return logits

    def _run_rows(
        self, prompt: list[int], rows: torch.Tensor, key_tokens: torch.Tensor, key_positions: torch.Tensor
    ) -> torch.Tensor:
        """Each row: prompt + its keys in position order, right-padded; key j at slot P + rank."""
        p = len(prompt)
        order = torch.argsort(key_positions)
        prompt_emb = self.embed_prompt(torch.tensor(prompt, dtype=torch.long))  # [P, D]
        key_emb = self.embed_image(key_tokens[order])  # [N, D]
        lengths = rows[:, order].sum(dim=1)
        width = p + int(lengths.max()) if rows.numel() else p
        batch = rows.shape[0]
        embeds = prompt_emb.new_zeros(batch, width, prompt_emb.shape[-1])
        positions = torch.zeros(batch, width, dtype=torch.long)
        attention = torch.zeros(batch, width, dtype=torch.long)
        embeds[:, :p] = prompt_emb
        positions[:, :p] = torch.arange(p)
        attention[:, :p] = 1
        for r in range(batch):
            members = rows[r, order]
            n = int(members.sum())
            embeds[r, p : p + n] = key_emb[members]
            positions[r, p : p + n] = p + key_positions[order][members]
            attention[r, p : p + n] = 1
        hidden = self.backbone(embeds, attention, positions)  # [R, width, D]
        # scatter back so that key j (original index) sits at slot P + j
        out = hidden.new_zeros(batch, p + key_tokens.numel(), hidden.shape[-1])
        out[:, :p] = hidden[:, :p]
        for r in range(batch):
            members = order[rows[r, order]]
            out[r, p + members] = hidden[r, p : p + members.numel()]
        return out


def shared_rows(
    context: torch.Tensor, key_positions: torch.Tensor, query_positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group queries whose contexts are the prefixes (positions < t) of one key set."""
    rows: list[torch.Tensor] = []
    row_of = [0] * context.shape[0]
    for q in sorted(range(context.shape[0]), key=lambda i: -int(query_positions[i])):
        before = key_positions < query_positions[q]
        match = next((r for r, row in enumerate(rows) if torch.equal(row & before, context[q])), None)
        if match is None:
            positions = key_positions[context[q]]
            # Verify the context is a sequence: one key per position
            if torch.unique(positions).numel() != positions.numel():
                raise QueryContextError(f"query {q} sees two keys at one position: {sorted(positions.tolist())}")
            match = len(rows)
            rows.append(context[q])
        row_of[q] = match
    if not rows:
        rows.append(torch.zeros_like(key_positions, dtype=torch.bool))
    return torch.stack(rows), torch.tensor(row_of, dtype=torch.long)


def answer_slots(
    rows: torch.Tensor,
    row_of: torch.Tensor,
    context: torch.Tensor,
    key_positions: torch.Tensor,
    query_positions: torch.Tensor,
    prompt_length: int,
) -> torch.Tensor:
    """[Q] slot whose output answers each query: key t - 1's slot, or the last prompt slot."""
    previous = context & (key_positions[None, :] == query_positions[:, None] - 1)  # [Q, N]
    count = previous.sum(dim=1)
    # Verify every query t > 0 sees exactly one key at t - 1
    bad = (query_positions > 0) & (count != 1)
    if bool(bad.any()):
        q = int(bad.nonzero()[0, 0])
        raise QueryContextError(
            f"query {q} for position {int(query_positions[q])} sees {int(count[q])} keys at the position before it"
        )
    index = previous.to(torch.long).argmax(dim=1) if previous.shape[1] else torch.zeros_like(query_positions)
    key_slot = prompt_length + index
    return torch.where(query_positions > 0, key_slot, prompt_length - 1)


def _lm_backbone(model: Any) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    def run(embeds: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        out = model(inputs_embeds=embeds, attention_mask=attention, position_ids=positions, use_cache=False)
        logits: torch.Tensor = out.logits
        return logits

    return run


def causal_lm_model(
    model: Any,
    image_token_ids: Sequence[int],
    end_of_row_id: int | None,
    prompts: Sequence[Sequence[int]],
    null_prompt: Sequence[int],
    num_positions: int,
) -> HFImageModel:
    """A causal LM whose image codes are text-vocabulary ids (Emu3, Chameleon / Lumina-mGPT).
    The backbone returns LM logits; the head picks the image-id columns."""
    ids = torch.tensor(list(image_token_ids), dtype=torch.long)
    lm_vocab = model.get_input_embeddings().num_embeddings
    # Verify the image ids and the end-of-row id are LM ids
    if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= lm_vocab:
        raise InvalidParameterError(f"image token ids must be in 0..{lm_vocab - 1}")
    if end_of_row_id is not None and not 0 <= end_of_row_id < lm_vocab:
        raise InvalidParameterError(f"end_of_row_id {end_of_row_id} is outside the LM vocabulary of {lm_vocab}")
    embedding = model.get_input_embeddings()
    our_to_lm = ids if end_of_row_id is None else torch.cat([ids, torch.tensor([end_of_row_id])])

    def embed_image(codes: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = embedding(our_to_lm[codes])
        return out

    def embed_prompt(tokens: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = embedding(tokens)
        return out

    def head(lm_logits: torch.Tensor) -> torch.Tensor:
        return lm_logits[..., ids]

    model.eval()
    return HFImageModel(
        embed_prompt,
        embed_image,
        _lm_backbone(model),
        head,
        ids.numel(),
        prompts,
        null_prompt,
        num_positions,
        end_of_row_id is not None,
    )


def emu3_model(
    model: Any,
    image_token_ids: Sequence[int],
    end_of_row_id: int,
    prompts: Sequence[Sequence[int]],
    null_prompt: Sequence[int],
    num_positions: int,
) -> HFImageModel:
    """Emu3ForConditionalGeneration: visual tokens are text ids; each row ends with an
    end-of-line token (use `Layout(h, w, end_of_row_token=adapter.end_of_row_token)`)."""
    return causal_lm_model(model, image_token_ids, end_of_row_id, prompts, null_prompt, num_positions)


def lumina_mgpt_model(
    model: Any,
    prompts: Sequence[Sequence[int]],
    null_prompt: Sequence[int],
    height: int,
    width: int,
    image_token_ids: Sequence[int] = LUMINA_IMAGE_IDS,
    end_of_row_id: int = LUMINA_END_OF_ROW,
) -> HFImageModel:
    """A Chameleon-family backbone laid out like Lumina-mGPT: image ids 4..8195, each row
    followed by token 8803, so an H x W image is H * (W + 1) positions."""
    return causal_lm_model(model, image_token_ids, end_of_row_id, prompts, null_prompt, height * (width + 1))


def janus_model(
    model: Any, prompts: Sequence[Sequence[int]], null_prompt: Sequence[int], num_positions: int
) -> HFImageModel:
    """JanusForConditionalGeneration through its generation head (no row delimiters)."""
    inner = model.model
    text_embedding = inner.language_model.get_input_embeddings()

    def embed_prompt(tokens: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = text_embedding(tokens)
        return out

    def embed_image(codes: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = model.prepare_embeddings_for_image_generation(codes)
        return out

    def backbone(embeds: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        out = inner.language_model(
            inputs_embeds=embeds, attention_mask=attention, position_ids=positions, use_cache=False
        )
        hidden: torch.Tensor = out.last_hidden_state
        return hidden

    def head(hidden: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = inner.generation_head(hidden)
        return out

    model.eval()
    vocab = inner.generation_embeddings.num_embeddings
    return HFImageModel(embed_prompt, embed_image, backbone, head, vocab, prompts, null_prompt, num_positions, False)
