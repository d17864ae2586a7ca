"""The real-model table (jacobi_oracle/experiments/realtable.py): its statistical verdict column and
the row-entry proxy rows, on a tiny random LlamaGen (seconds, no checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from jacobi_oracle.experiments.realtable import (
    FAMILY_ALPHA,
    Row,
    calibration_counts,
    decode_images,
    family_size,
    judge_calibration,
    main,
    markdown,
    save_rows,
)
from jacobi_oracle.models.llamagen import LlamaGen, llamagen_config
from jacobi_oracle.mutants.catalogue import get_mutant
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.spec.errors import QueryContextError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.row_entry import RowEntryProxy
from jacobi_oracle.spec.sampling import Sampling

GRID = 4
SAMPLING = Sampling(temperature=1.0, cfg_scale=2.0)  # the table's setting
IMAGES = 150  # 2400 tokens: the surprise test detects ~0.16 nats/token at the table's alpha
SEED = 5


@pytest.fixture(scope="module")
def model() -> LlamaGen:
    torch.manual_seed(0)
    config = llamagen_config("small", vocab_size=16, num_classes=2, grid_size=GRID, dim=32, n_layer=2, n_head=2)
    tiny = LlamaGen(config).double()
    torch.nn.init.normal_(tiny.output.weight, std=0.5)  # peaked conditionals, so temperature matters
    return tiny


def judged_row(model: LlamaGen, name: str, images: int, decode_sampling: Sampling, strategy: object = None) -> Row:
    """Decode with `decode_sampling` (and `strategy` if given), judge under the table's SAMPLING."""
    layout = Layout(GRID, GRID)
    conditions = [i % 2 for i in range(images)]
    kwargs = {} if strategy is None else {"strategy": strategy}
    decoded = decode_images(name, model, layout, decode_sampling, conditions, SEED, **kwargs)  # type: ignore[arg-type]
    tables = calibration_counts(model, layout, SAMPLING, conditions, decoded, SEED)
    passes = float(decoded[0].forward_passes)
    surprise, pit = [int(v) for v in tables.surprise], [int(v) for v in tables.pit]
    return Row(name, True, {}, images, GRID * GRID, passes, 0.0, 0.0, 0.0, 0.0, surprise, pit)


def test_ar_passes_and_broken_decoders_fail_the_calibration_verdict(model: LlamaGen) -> None:
    """False-fail probability: each row is judged at FAMILY_ALPHA / family_size() per sub-test,
    so AR (lossless) fails with probability <= FAMILY_ALPHA = 1e-6. Negative controls: AR at
    the wrong temperature (0.7 instead of 1) and the always-accept SJD mutant must FAIL."""
    family = family_size()
    ar = judged_row(model, "ar", IMAGES, SAMPLING).calibration(family)
    assert FAMILY_ALPHA <= 1e-6 and ar.alpha == FAMILY_ALPHA / family
    assert ar.passed, [(t.name, t.p_value) for t in ar.tests]
    assert ar.tests[2].detail["tokens"] == IMAGES * GRID * GRID
    cold = judged_row(model, "ar", IMAGES, Sampling(temperature=0.7, cfg_scale=2.0)).calibration(family)
    assert not cold.passed
    assert cold.deficit > 2 * cold.deficit_se  # too-likely tokens: a positive surprise deficit
    accept_all = get_mutant("always-accept").build()
    broken = judged_row(model, "sjd", 10, SAMPLING, accept_all).calibration(family)
    assert not broken.passed
    # the power the table reports is what the AR run's budget gives
    assert 0 < ar.min_detectable_shift < 0.5


def test_two_d_presets_decode_through_the_counting_proxy(model: LlamaGen) -> None:
    layout = Layout(GRID, GRID)
    zipar = build_preset("zipar", window=2)
    with pytest.raises(QueryContextError):
        decode_images("zipar", model, layout, SAMPLING, [0], SEED, strategy=zipar)
    proxy = RowEntryProxy(model)
    plain = decode_images("zipar", proxy, layout, SAMPLING, [0, 1], SEED, strategy=zipar)
    assert proxy.proxied_queries > 0  # rows really overlapped and their entries were proxied
    assert all(d.forward_passes < layout.num_cells for d in plain)
    raster = RowEntryProxy(model)
    sjd = decode_images("sjd", raster, layout, SAMPLING, [0], SEED, strategy=build_preset("sjd", window=4))
    assert raster.proxied_queries == 0
    assert sjd == decode_images("sjd", model, layout, SAMPLING, [0], SEED, strategy=build_preset("sjd", window=4))


def test_markdown_marks_proxy_rows_and_render_merges_saved_runs(model: LlamaGen, tmp_path: Path) -> None:
    ar = judged_row(model, "ar", 20, SAMPLING)
    cold = judged_row(model, "ar", 20, Sampling(temperature=0.3, cfg_scale=2.0))
    proxied = Row(**{**ar.__dict__, "strategy": "zipar", "lossless": False, "proxied_queries": 3.0})
    broken = Row(**{**cold.__dict__, "strategy": "sjd"})
    table = markdown([ar, proxied, broken], GRID, SAMPLING, "cmd")
    lines = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert "pass" in lines["| ar"] and "| zipar [P]" in lines and "**FAIL**" in lines["| sjd"]
    assert "[P]: decoded through `RowEntryProxy`" in table and "zipar 3" in table
    save_rows(tmp_path / "a.json", [ar], GRID, SAMPLING, "cmd a", {"ar": []})
    save_rows(tmp_path / "b.json", [broken], GRID, SAMPLING, "cmd b", {"sjd": []})
    assert json.loads((tmp_path / "a.json").read_text())["rows"][0]["surprise"] == ar.surprise
    assert main(["--render", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0


def test_judging_is_the_statistical_engines_calibration(model: LlamaGen) -> None:
    row = judged_row(model, "ar", 20, SAMPLING)
    verdict = judge_calibration(row.surprise, row.pit, 3)
    assert [t.name for t in verdict.tests] == ["pit-chi2", "pit-ks", "surprise"]
    assert verdict.alpha == FAMILY_ALPHA / 3


def test_the_trained_model_at_24x24_is_not_enumerable_and_does_not_overflow() -> None:
    # V^L = 256^576 overflows a float: the enumerability check must not raise on real grids
    from jacobi_oracle.models.trained import load_trained
    from jacobi_oracle.oracle.statistical.counts import is_enumerable
    from jacobi_oracle.spec.layout import Layout
    from jacobi_oracle.spec.model import Problem
    from jacobi_oracle.spec.sampling import Sampling

    model = load_trained().for_grid(24)
    assert not is_enumerable(Problem(model, 0, Layout(24, 24), Sampling(cfg_scale=2.0)))


def test_the_realtable_command_records_the_words_it_was_given(capsys: pytest.CaptureFixture[str]) -> None:
    """`jacobi-oracle realtable` and its older spelling `python -m ...experiments.realtable` run
    the same command, and the table records the words given."""
    argv = ["--model", "digits", "--grid", "16", "--images", "1", "--strategies", "ar", "--threads", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "`jacobi-oracle realtable " + " ".join(argv) + "`" in out and "| ar | yes |" in out
