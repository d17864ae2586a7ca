"""Exact audits of LPD (spec/lpd.md section 2) on position-query toy models with exact laws."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import torch

from jacobi_oracle.models.position_query import JointTableModel
from jacobi_oracle.models.transformer import TinyTransformer
from jacobi_oracle.oracle.exact import LOSSLESS_TOLERANCE, Law, compare_laws, exact_ar_law, exact_output_law
from jacobi_oracle.reference.lpd import LPDDecoder, LPDState, lpd
from jacobi_oracle.reference.presets import PRESETS, build_preset
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Problem, forward_pass
from jacobi_oracle.spec.sampling import Sampling

LAYOUT = Layout(2, 3)


DIFFERENT = 1e-9  # exact laws: equal laws differ by rounding (<= 1e-12), different ones by far more


@dataclass
class StaleContextLPD(LPDDecoder):
    """Known-broken: a group's queries do not see the group just before (a KV-cache off-by-one)."""

    def context(self, state: LPDState) -> dict[int, int]:
        last = set(state.groups[state.step - 1]) if state.step else set()
        return {c: t for c, t in enumerate(state.committed) if t is not None and c not in last}


def joint_problem(sampling: Sampling | None = None) -> Problem:
    sampling = Sampling() if sampling is None else sampling
    return Problem(JointTableModel(vocab_size=2, height=2, width=3, seed=1), 0, LAYOUT, sampling)


def transformer_problem(sampling: Sampling | None = None) -> Problem:
    sampling = Sampling() if sampling is None else sampling
    model = TinyTransformer(
        vocab_size=2, num_positions=6, dim=16, heads=2, layers=2, seed=3, queries="lpd", mlp_ratio=4
    )
    return Problem(model, 1, LAYOUT, sampling)


def tv(law: Law, reference: Law) -> float:
    return compare_laws(law, reference, LAYOUT.num_cells, 2).total_variation


def product_of_marginals(model: JointTableModel, condition: int, groups: tuple[tuple[int, ...], ...]) -> Law:
    """q(x) = prod_i prod_{t in G_i} P(x_t | x_{G_<i}), straight from the joint table."""
    joint = model.table[condition]
    law: Law = {}
    for x in product(range(model.vocab_size), repeat=model.num_positions):
        prob = 1.0
        for i, group in enumerate(groups):
            context = {c: x[c] for earlier in groups[:i] for c in earlier}
            for t in group:
                prob *= float(model.conditional(joint, context, t)[x[t]])
        law[x] = prob
    return law


def ordered_ar_law(problem: Problem, order: tuple[int, ...]) -> Law:
    """prod_i p(x_order[i] | x_order[<i]): one plain query per cell, no query keys."""
    law: Law = {}

    def walk(tokens: dict[int, int], weight: float) -> None:
        if len(tokens) == len(order):
            law[tuple(tokens[c] for c in range(len(order)))] = weight
            return
        cell = order[len(tokens)]
        cells = sorted(tokens)
        probs = forward_pass(
            problem,
            torch.tensor([tokens[c] for c in cells], dtype=torch.long),
            torch.tensor(cells, dtype=torch.long),
            torch.tensor([cell]),
            torch.ones(1, len(cells), dtype=torch.bool),
        )[0]
        for token, p in enumerate(probs.tolist()):
            walk({**tokens, cell: token}, weight * p)

    walk({}, 1.0)
    return law


def test_lpd_samples_the_product_of_exact_marginals_inside_each_group() -> None:
    problem = joint_problem()
    model = problem.model
    assert isinstance(model, JointTableModel)
    for decoder in (lpd(), lpd(steps=3, order_seed=5)):
        groups = decoder.compute_groups(LAYOUT)
        expected = product_of_marginals(model, 0, groups)
        assert tv(exact_output_law(decoder, problem).law, expected) <= LOSSLESS_TOLERANCE, f"groups {groups}"
        # negative control: the stale-context decoder is told apart from the formula
        stale = StaleContextLPD(steps=decoder.steps, order_seed=decoder.order_seed)
        assert tv(exact_output_law(stale, problem).law, expected) > DIFFERENT


def test_groups_of_one_cell_are_lossless_in_every_order_for_a_joint_model() -> None:
    problem = joint_problem()
    ar = exact_ar_law(problem)
    ones = (1,) * LAYOUT.num_cells
    for decoder in (lpd(group_sizes=ones, order="random", order_seed=2), lpd(group_sizes=ones, order_seed=7)):
        result = exact_output_law(decoder, problem)
        assert set(result.pass_distribution) == {LAYOUT.num_cells}, "one pass per cell"
        assert tv(result.law, ar) <= LOSSLESS_TOLERANCE, f"order {decoder.compute_groups(LAYOUT)}"
    stale = StaleContextLPD(group_sizes=ones, order="random", order_seed=2)
    assert tv(exact_output_law(stale, problem).law, ar) > DIFFERENT, "negative control was not rejected"


def test_groups_of_one_cell_follow_the_ar_law_of_their_order() -> None:
    problem = transformer_problem(Sampling(cfg_scale=2.0))
    ones = (1,) * LAYOUT.num_cells
    raster = lpd(group_sizes=ones, order="raster")
    assert tv(exact_output_law(raster, problem).law, exact_ar_law(problem)) <= LOSSLESS_TOLERANCE
    shuffled = lpd(group_sizes=ones, order="random", order_seed=4)
    order = tuple(g[0] for g in shuffled.compute_groups(LAYOUT))
    law = exact_output_law(shuffled, problem).law
    assert tv(law, ordered_ar_law(problem, order)) <= LOSSLESS_TOLERANCE, f"order {order}"
    assert tv(law, exact_ar_law(problem)) > DIFFERENT, "a random toy transformer is not order-free (control)"


def test_lpd_with_groups_is_not_the_ar_law(capsys: object) -> None:
    """The report: LPD's exact total variation from the AR law of the same toy model."""
    for name, problem in (("joint", joint_problem()), ("pq-transformer", transformer_problem())):
        result = exact_output_law(lpd(), problem)
        distance = tv(result.law, exact_ar_law(problem))
        print(
            f"LPD {lpd().compute_groups(LAYOUT)} on {name}: "
            f"TV vs AR = {distance:.4f}, passes {result.mean_forward_passes}"
        )
        assert distance > DIFFERENT, f"{name}: LPD with groups of 2 and 4 matched the AR law"


def test_mutual_visibility_changes_the_law_of_a_position_query_transformer() -> None:
    problem = transformer_problem()
    mutual = exact_output_law(lpd(queries="mutual"), problem).law
    independent = exact_output_law(lpd(queries="independent"), problem).law
    assert tv(mutual, independent) > DIFFERENT, "query keys were ignored by the transformer"
    joint = joint_problem()  # a perfect model ignores co-queries: the two modes agree
    assert (
        tv(exact_output_law(lpd(queries="mutual"), joint).law, exact_output_law(lpd(queries="independent"), joint).law)
        <= LOSSLESS_TOLERANCE
    )


def test_lpd_preset_is_registered_as_lossy() -> None:
    assert "lpd" in PRESETS and not PRESETS["lpd"].lossless
    decoder = build_preset("lpd", steps=3, order_seed=1)
    assert isinstance(decoder, LPDDecoder) and decoder.steps == 3


def test_batched_queries_answer_like_single_queries() -> None:
    """The transformer pads distinct contexts into one batch; padding must change no answer."""
    model = TinyTransformer(
        vocab_size=3, num_positions=9, dim=16, heads=2, layers=2, seed=5, queries="lpd", mlp_ratio=4
    )
    gen = torch.Generator().manual_seed(0)
    key_positions = torch.tensor([0, 2, 4, 5, 7])
    key_tokens = torch.randint(3, (5,), generator=gen)
    query_positions = torch.tensor([1, 3, 6, 8])
    visible = torch.rand(4, 5, generator=gen) < 0.6
    together = model.logits(0, key_tokens, key_positions, query_positions, visible)
    for q in range(4):
        alone = model.logits(
            0,
            key_tokens[visible[q]],
            key_positions[visible[q]],
            query_positions[q : q + 1],
            visible[q : q + 1, visible[q]],
        )
        assert torch.allclose(together[q], alone[0], rtol=0, atol=1e-12), f"query {q}: {together[q]} != {alone[0]}"


def test_training_batches_split_each_image_into_context_and_one_group() -> None:
    from jacobi_oracle.experiments.lpd_train import sample_batch

    tokens = torch.arange(5)[:, None] * 16 + torch.arange(16)  # token = image * 16 + cell
    labels = torch.tensor([3, 1, 4, 1, 0])
    gen = torch.Generator().manual_seed(0)
    cls, ct, cp, qp, cv, qv, target = sample_batch(tokens, labels, 5, 8, gen)
    for r in range(8):
        context = set(cp[r, cv[r]].tolist())
        group = qp[r, qv[r]].tolist()
        image = int(target[r, 0]) // 16
        assert not context & set(group) and len(group) >= 1, f"row {r}: context {context}, group {group}"
        assert target[r, qv[r]].tolist() == [image * 16 + c for c in group]
        assert ct[r, cv[r]].tolist() == [image * 16 + c for c in cp[r, cv[r]].tolist()]
        assert int(cls[r]) in (int(labels[image]), 5), f"row {r}: class {int(cls[r])} for image {image}"


def test_committed_lpd_model_decodes_a_16x16_grid_in_20_passes() -> None:
    from jacobi_oracle.experiments.lpd_eval import DEFAULT_LPD_CHECKPOINT, load_lpd
    from jacobi_oracle.spec.randomness import KeyedRandomness

    model, tokenizer, config = load_lpd(DEFAULT_LPD_CHECKPOINT)
    problem = Problem(model, 0, Layout(config.grid, config.grid), Sampling())
    decoded = lpd(steps=20).decode_problem(problem, KeyedRandomness(0))
    assert (config.grid, decoded.forward_passes) == (16, 20)
    assert len(decoded.tokens) == 256 and all(0 <= t < tokenizer.vocab_size for t in decoded.tokens)
    assert sorted(c for it in decoded.trace for c in it.committed) == list(range(256))
