"""`assert_lossless`: one call that fails a test when a decoder's output law is not AR's
(spec/testing.md). The exact engine decides when the model is small enough to enumerate;
the statistical engine otherwise, with its false-fail probability `alpha` and stated power."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..models.registry import MODELS, ModelCase, build_model
from ..oracle.exact import LOSSLESS_TOLERANCE, ExactVerdict, check_exact
from ..oracle.pathwise import PathwiseVerdict, check_pathwise
from ..oracle.statistical import StatisticalVerdict
from ..oracle.statistical.sequential import sequential_check
from ..spec.errors import InvalidParameterError, UnsupportedStrategyError
from ..spec.layout import Layout
from ..spec.model import Model, Problem
from ..spec.sampling import Sampling
from ..spec.strategy import Strategy
from .adapter import CallableDecoder, DecoderFn, wrap_decoder

Engine = Literal["auto", "exact", "stat"]
ENGINES: tuple[Engine, ...] = ("auto", "exact", "stat")
ASSERT_MODEL = "hash-tiny"  # assert_lossless's default model: exact checks of a whole-run decoder in about a second
DEFAULT_BUDGET = 2000  # most samples of a statistical check (when no time budget is given)
DEFAULT_ALPHA = 1e-6  # false-fail probability of one assert_lossless call (statistical engine)
EXACT_AUTO_SEQUENCES = 64  # "auto" enumerates when V ** L is at most this many sequences

ModelSpec = str | Problem | ModelCase | Model


@dataclass(frozen=True)
class LosslessReport:
    """What `assert_lossless` found (returned on a pass; its message is the AssertionError's)."""

    decoder: str
    engine: str
    passed: bool
    verdict: ExactVerdict | StatisticalVerdict
    message: str

    def to_json(self) -> dict[str, object]:
        return {
            "decoder": self.decoder,
            "engine": self.engine,
            "passed": self.passed,
            "verdict": self.verdict.to_json(),
        }


def assert_lossless(
    decoder: Strategy | DecoderFn,
    model: ModelSpec = ASSERT_MODEL,
    *,
    layout: Layout | None = None,
    condition: int | None = None,
    sampling: Sampling | None = None,
    budget: int | None = None,
    alpha: float = DEFAULT_ALPHA,
    engine: Engine = "auto",
    seed: int = 0,
    seconds: float | None = None,
    workers: int = 1,
) -> LosslessReport:
    """Raise AssertionError (with TV / p-values / effect sizes / power and a repro snippet)
    unless `decoder`'s output law equals vanilla AR sampling on `model`.

    The statistical engine is sequential: it judges growing sample sets, stops at the first
    rejection, and otherwise runs to `budget` samples (default DEFAULT_BUDGET, unlimited when
    only `seconds` is given) or `seconds`, on `workers` processes. Its false-fail probability
    is `alpha` however early it stops."""
    strategy = as_strategy(decoder)
    problem = resolve_problem(model, layout, condition, sampling)
    chosen = choose_engine(strategy, problem, engine)
    if budget is None and seconds is None:
        budget = DEFAULT_BUDGET
    repro = repro_snippet(strategy, model, problem, budget, alpha, chosen, seed, seconds)
    if chosen == "exact":
        report = exact_report(strategy, problem, repro)
    else:
        report = statistical_report(strategy, problem, budget, alpha, seed, repro, seconds, workers)
    if not report.passed:
        raise AssertionError(report.message)
    return report


def assert_pathwise_equal(
    decoder: Strategy | DecoderFn,
    model: ModelSpec = ASSERT_MODEL,
    *,
    layout: Layout | None = None,
    condition: int | None = None,
    sampling: Sampling | None = None,
    samples: int = 100,
    seed: int = 0,
) -> PathwiseVerdict:
    """Raise AssertionError (with the first counterexample's seed, sample and cell) unless
    `decoder` returns Gumbel AR's tokens under every one of `samples` noise draws (the pathwise
    engine: for decoders that are deterministic given their noise, spec/gumbel_jacobi.md)."""
    strategy = as_strategy(decoder)
    problem = resolve_problem(model, layout, condition, sampling)
    verdict = check_pathwise(strategy, problem, samples, seed)
    if verdict.counterexample is not None:
        raise AssertionError(
            f"decoder {verdict.strategy!r} differs from Gumbel AR under the same noise in {verdict.mismatches} of "
            f"{samples} draws; first: {verdict.counterexample.describe()}\n"
            f"  decoder:   {verdict.counterexample.decoder_tokens}\n  Gumbel AR: {verdict.counterexample.ar_tokens}"
        )
    return verdict


def as_strategy(decoder: Strategy | DecoderFn) -> Strategy:
    if isinstance(decoder, Strategy):
        return decoder
    return wrap_decoder(decoder)


def resolve_problem(
    model: ModelSpec, layout: Layout | None, condition: int | None, sampling: Sampling | None
) -> Problem:
    """A Problem from a built-in model name, a ModelCase, a Problem, or a Model plus `layout`."""
    sampling = sampling or Sampling()
    if isinstance(model, Problem):
        return model
    if isinstance(model, str):
        if model not in MODELS:
            raise InvalidParameterError(f"unknown model {model!r}; built-in models: {', '.join(MODELS)}")
        model = build_model(model)
    if isinstance(model, ModelCase):
        cond = model.condition if condition is None else condition
        return Problem(model.model, cond, layout or model.layout, sampling)
    # Verify a bare model comes with its grid
    if layout is None:
        raise InvalidParameterError(f"model {type(model).__name__} needs layout=Layout(height, width)")
    return Problem(model, condition, layout, sampling)


def sequence_count(problem: Problem) -> int:
    count: int = int(problem.model.vocab_size) ** problem.layout.num_cells
    return count


def choose_engine(strategy: Strategy, problem: Problem, engine: Engine) -> Literal["exact", "stat"]:
    # Verify the engine name
    if engine not in ENGINES:
        raise InvalidParameterError(f"engine must be one of {ENGINES}, got {engine!r}")
    exact_capable = not isinstance(strategy, CallableDecoder) or strategy.exact_capable
    if engine == "exact" and not exact_capable:
        raise UnsupportedStrategyError(
            f"decoder {strategy.name!r} draws from its own torch.Generator: the exact engine needs every draw "
            "through the oracle's Randomness (wrap_decoder(fn, randomness='oracle')); use engine='stat'"
        )
    if engine == "auto":
        small = sequence_count(problem) <= EXACT_AUTO_SEQUENCES
        return "exact" if exact_capable and small else "stat"
    return engine


def exact_report(strategy: Strategy, problem: Problem, repro: str) -> LosslessReport:
    verdict = check_exact(strategy, problem)
    return LosslessReport(strategy.name, "exact", verdict.lossless, verdict, exact_message(verdict, repro))


def describe_reuse(keys: tuple[str, ...], shown: int = 6) -> str:
    """'none', or the first keys read a second time (kind:purpose/iteration/cell) and a count."""
    if not keys:
        return "none"
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def exact_message(verdict: ExactVerdict, repro: str) -> str:
    status = "is lossless" if verdict.lossless else "is NOT lossless"
    return "\n".join(
        [
            f"decoder {verdict.strategy!r} {status} (exact engine, every random outcome enumerated)",
            f"  total variation from AR sampling: {verdict.total_variation:.6g} (tolerance {LOSSLESS_TOLERANCE:g})",
            f"  largest per-cell marginal deviation: {verdict.max_position_deviation:.6g} "
            f"at cell {verdict.worst_position}",
            f"  mean forward passes: {verdict.mean_forward_passes:.4g} (AR: {verdict.ar_forward_passes})",
            f"  random keys read twice on some path: {describe_reuse(verdict.reused_keys)}",
            "repro:",
            repro,
        ]
    )


def statistical_report(
    strategy: Strategy,
    problem: Problem,
    budget: int | None,
    alpha: float,
    seed: int,
    repro: str,
    seconds: float | None = None,
    workers: int = 1,
) -> LosslessReport:
    verdict = sequential_check(strategy, problem, alpha, budget, seconds, seed, workers)
    return LosslessReport(
        strategy.name, "stat", verdict.passed, verdict, statistical_message(strategy, verdict, alpha, repro)
    )


def statistical_message(strategy: Strategy, verdict: StatisticalVerdict, alpha: float, repro: str) -> str:
    status = "passed" if verdict.passed else "FAILED"
    stop = f"stopped at look {len(verdict.looks)} of a sequential check" if verdict.looks else "one look"
    lines = [
        f"decoder {strategy.name!r} {status} the statistical lossless check "
        f"({verdict.budget} samples, {verdict.seconds:.3g} s, {stop}; false-fail probability {alpha:g})",
        f"  {'test':<28} {'statistic':>12} {'p-value':>11} {'alpha':>10} {'effect':>10}",
    ]
    for test in verdict.tests:
        mark = "" if test.passed else "   <-- rejected"
        lines.append(
            f"  {test.name:<28} {test.statistic:>12.4g} {test.p_value:>11.3g} {test.alpha:>10.2g} "
            f"{test.effect_size:>10.3g}{mark}"
        )
    lines.append(
        f"  power: detects w.p. >= 0.99 a per-cell TV >= {verdict.power:.3g}, a pair TV >= {verdict.power_pair:.3g}, "
        f"a surprise shift >= {verdict.power_surprise:.3g} nats/token ({verdict.reference} reference)"
        + (
            f"; any departure of the whole law of TV >= {verdict.power_sequence:.3g}"
            if verdict.power_sequence is not None
            else ""
        )
    )
    lines += ["repro:", repro]
    return "\n".join(lines)


def repro_snippet(
    strategy: Strategy,
    model: ModelSpec,
    problem: Problem,
    budget: int | None,
    alpha: float,
    engine: str,
    seed: int,
    seconds: float | None = None,
) -> str:
    model_arg = repr(model) if isinstance(model, str) else "<your model / Problem>"
    args = [f"<{strategy.name}>", f"model={model_arg}", f"engine={engine!r}"]
    if problem.sampling != Sampling():
        args.append(f"sampling={problem.sampling!r}")
    if engine == "stat":
        args += [f"budget={budget}", f"alpha={alpha:g}", f"seed={seed}"]
        args += [f"seconds={seconds:g}"] if seconds is not None else []
    return "  from jacobi_oracle.testing import assert_lossless\n  assert_lossless(" + ", ".join(args) + ")"
