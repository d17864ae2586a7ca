"""spec/row_entry.md: the row-entry proxy that lets 2D presets start rows on a next-token model."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given

from jacobi_oracle.models.llamagen import LlamaGen, llamagen_config
from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.oracle.exact import compare_laws, exact_ar_law, exact_output_law
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.spec.errors import QueryContextError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.randomness import KeyedRandomness
from jacobi_oracle.spec.row_entry import RowEntryProxy, add_entry_proxies
from jacobi_oracle.spec.sampling import Sampling

from .strategies import proxy_passes


@given(proxy_passes())
def test_queries_that_see_their_previous_key_are_answered_unchanged(case: tuple[torch.Tensor, ...]) -> None:
    tokens, positions, queries, visible = case
    model = HashModel(vocab_size=3, num_positions=9, row_stride=3)
    plain = model.logits(0, tokens, positions, queries, visible)
    proxied = RowEntryProxy(model).logits(0, tokens, positions, queries, visible)
    sees_previous = ((positions[None, :] == queries[:, None] - 1) & visible).any(dim=1)
    # equal up to summation order (the proxy columns are invisible to these queries)
    assert torch.allclose(plain[sees_previous], proxied[sees_previous], rtol=0, atol=1e-12)


@given(proxy_passes())
def test_each_proxy_stands_at_t_minus_1_with_the_nearest_earlier_token_for_its_query_only(
    case: tuple[torch.Tensor, ...],
) -> None:
    tokens, positions, queries, visible = case
    new_tokens, new_positions, new_visible = add_entry_proxies(tokens, positions, queries, visible)
    n = tokens.numel()
    assert torch.equal(new_tokens[:n], tokens) and torch.equal(new_visible[:, :n], visible)
    for k in range(n, new_tokens.numel()):
        (owner,) = new_visible[:, k].nonzero()[:, 0].tolist()  # visible to exactly one query
        t = int(queries[owner])
        assert int(new_positions[k]) == t - 1
        earlier = [
            (int(p), int(x)) for p, x, v in zip(positions, tokens, visible[owner], strict=True) if v and p < t - 1
        ]
        assert int(new_tokens[k]) == max(earlier)[1]
    # after the proxies every query t > 0 sees exactly one key at t - 1
    at_previous = (new_positions[None, :] == queries[:, None] - 1) & new_visible
    assert bool((at_previous.sum(dim=1) == 1).all())


def test_a_query_with_nothing_before_its_missing_key_is_refused() -> None:
    with pytest.raises(QueryContextError, match="position 3 sees no key at 2"):
        add_entry_proxies(torch.tensor([1]), torch.tensor([2]), torch.tensor([3, 3]), torch.tensor([[True], [False]]))


def test_raster_decoders_on_llamagen_are_identical_through_the_proxy() -> None:
    config = llamagen_config("small", vocab_size=16, num_classes=2, grid_size=4, dim=32, n_layer=2, n_head=2)
    model = LlamaGen(config).double()
    torch.nn.init.normal_(model.output.weight, std=0.5)
    layout, sampling = Layout(4, 4), Sampling(cfg_scale=1.5)
    for name in ("ar", "sjd"):
        plain = build_preset(name, window=4) if name == "sjd" else build_preset(name)
        a = plain.decode(model, 1, layout, sampling, KeyedRandomness(7, 0))
        b = plain.decode(RowEntryProxy(model), 1, layout, sampling, KeyedRandomness(7, 0))
        assert a.tokens == b.tokens and a.forward_passes == b.forward_passes


def test_two_d_presets_run_on_llamagen_only_through_the_proxy() -> None:
    config = llamagen_config("small", vocab_size=16, num_classes=2, grid_size=4, dim=32, n_layer=2, n_head=2)
    model = LlamaGen(config).double()
    layout = Layout(4, 4)
    zipar = build_preset("zipar", window=2)
    with pytest.raises(QueryContextError):
        zipar.decode(model, 0, layout, Sampling(), KeyedRandomness(0, 0))
    decoded = zipar.decode(RowEntryProxy(model), 0, layout, Sampling(), KeyedRandomness(0, 0))
    assert decoded.forward_passes < layout.num_cells  # rows really overlapped


def test_pjd_exact_stays_exact_through_the_proxy_and_pjd_does_not() -> None:
    """Exact laws (no sampling error) judged against the PLAIN model's AR law: pjd-exact's
    verification never needs a proxy (its verify queries see t - 1), only its refresh copies
    do; PJD commits proxy-answered cells. Negative control: pjd must be far from AR."""
    plain = HashModel(vocab_size=2, num_positions=6, row_stride=3)
    layout, sampling = Layout(2, 3), Sampling()
    ar = exact_ar_law(Problem(plain, 0, layout, sampling))
    wrapped = Problem(RowEntryProxy(plain), 0, layout, sampling)
    exact = compare_laws(exact_output_law(build_preset("pjd-exact"), wrapped).law, ar, 6, 2)
    lossy = compare_laws(exact_output_law(build_preset("pjd"), wrapped).law, ar, 6, 2)
    assert exact.total_variation < 1e-12
    assert lossy.total_variation > 0.05
