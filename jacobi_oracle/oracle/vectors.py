"""Test vectors for implementations in other languages (spec/vectors.md).

Four files, each a JSON object with "format" and "version":
    keyed_randomness.json   KeyedRandomness's hash: inputs -> 64-bit hash and uniform
    gumbel_noise.json       a key's Gumbel noise vector G(key): inputs -> float64 bytes, argmaxes
    verifier.json           one speculative window: p, q, drafts, uniforms -> accepts / residual / bonus
    sjd_runs.json           whole decodes on toy models under keyed noise -> tokens, passes, trace,
                            with each toy model's full causal conditional table (prefix -> p)
Every expected value is computed by the reference (spec/ and reference/), so a regression in the
reference shows up as a difference from the committed vectors (tests/vectors/).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..models.registry import build_model
from ..reference.keys import causal_query
from ..reference.presets import build_preset
from ..reference.state import Draft, JacobiState, Window
from ..reference.verifiers import SpeculativeVerifier
from ..spec.acceptance import compute_acceptance_probability, compute_residual
from ..spec.errors import InvalidParameterError, UnsupportedStrategyError
from ..spec.layout import Layout
from ..spec.model import Problem
from ..spec.randomness import (
    VECTOR_TAG,
    EventKey,
    KeyedRandomness,
    check_distribution,
    check_probability,
    inverse_cdf,
    keyed_hash,
    keyed_uniform,
    purpose_id,
    splitmix64,
)
from ..spec.sampling import Sampling

VERSION = 1
FILES = ("keyed_randomness.json", "gumbel_noise.json", "verifier.json", "sjd_runs.json")
PROB_TOLERANCE = 1e-12  # probabilities may differ by rounding across platforms; tokens may not
VERIFIER_CASES = 24
VERIFIER_VOCAB = (2, 3, 5)
RUN_MODELS = ("hash-tiny", "hash", "markov")
RUN_STRATEGIES: tuple[tuple[str, dict[str, int]], ...] = (
    ("ar", {}),
    ("sjd", {"window": 3}),
    ("sjd-uniform", {"window": 3}),
    ("sjd", {"window": 6}),
)
RUN_SAMPLES = 4  # keyed-noise sample indices 0 .. RUN_SAMPLES-1 per (model, strategy)
RUN_SEED = 2024


# --- keyed randomness ---


def event_fields(seed: int, sample: int, key: EventKey) -> dict[str, Any]:
    """A vector case's event: seed and sample (as strings: 64-bit), the key and its hash."""
    return {
        "seed": str(seed),
        "sample": str(sample),
        "purpose": key.purpose,
        "iteration": key.iteration,
        "cell": key.cell,
        "hash": str(keyed_hash(seed, sample, key)),
    }


def keyed_randomness_vectors() -> dict[str, Any]:
    """Hash chain inputs and outputs: splitmix64, purpose ids, 64-bit hashes, uniforms."""
    events = [("init", 0, 0), ("accept", 3, 7), ("residual", 1, 2), ("fresh", 0, 5), ("draw", 12, 0)]
    cases = []
    for seed, sample in ((0, 0), (1, 0), (2024, 3), ((1 << 64) - 1, 1 << 40)):
        for purpose, iteration, cell in events:
            key = EventKey(purpose, iteration, cell)
            cases.append(
                event_fields(seed, sample, key)
                | {"purpose_id": purpose_id(purpose), "uniform": keyed_uniform(seed, sample, key)}
            )
    mixes = [{"input": str(x), "output": str(splitmix64(x))} for x in (0, 1, 0x9E3779B97F4A7C15, (1 << 64) - 1)]
    return {"format": "jacobi-oracle/keyed-randomness", "version": VERSION, "splitmix64": mixes, "cases": cases}


GUMBEL_VOCAB = 8  # tokens per noise vector in gumbel_noise.json


def gumbel_noise_vectors() -> dict[str, Any]:
    """Noise vectors G(key) (spec/randomness.py `keyed_gumbel`): the event hash, G as the
    little-endian bytes of its float64 values (hex) and as floats, and argmax(log p + G) for
    a few laws p."""
    laws = [[1.0 / GUMBEL_VOCAB] * GUMBEL_VOCAB, [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.03125, 0.0, 0.0]]
    cases = []
    for seed, sample in ((0, 0), (2024, 3), ((1 << 64) - 1, 1 << 40)):
        for purpose, iteration, cell in (("gumbel", 0, 0), ("gumbel", 0, 17), ("fresh", 4, 2)):
            key = EventKey(purpose, iteration, cell)
            noise = KeyedRandomness(seed, sample)
            vector = noise.gumbel(key, GUMBEL_VOCAB)
            argmaxes = [noise.gumbel_argmax(torch.tensor(p, dtype=torch.float64), key) for p in laws]
            cases.append(
                event_fields(seed, sample, key)
                | {
                    "gumbel_hex": vector.numpy().astype("<f8").tobytes().hex(),
                    "gumbel": vector.tolist(),
                    "argmax": argmaxes,
                }
            )
    return {
        "format": "jacobi-oracle/gumbel-noise",
        "version": VERSION,
        "vocab_size": GUMBEL_VOCAB,
        "vector_tag": VECTOR_TAG,
        "laws": laws,
        "cases": cases,
    }


# --- the verifier ---


class ScriptedRandomness:
    """Decisions from given uniforms, by event key, under KeyedRandomness's rules."""

    def __init__(self, uniforms: dict[EventKey, float]) -> None:
        self.uniforms = uniforms

    def bernoulli(self, p: float, key: EventKey) -> bool:
        return self.uniforms[key] < check_probability(p, key)

    def categorical(self, probs: torch.Tensor, key: EventKey) -> int:
        return inverse_cdf(check_distribution(probs, key), self.uniforms[key])

    def gumbel_argmax(self, probs: torch.Tensor, key: EventKey) -> int:
        raise UnsupportedStrategyError(f"a scripted verifier case has uniforms only, no noise vector for {key}")


@dataclass(frozen=True)
class WindowCase:
    target_probs: torch.Tensor  # [k + 1, V]: the k drafted cells, then the bonus cell
    draft_probs: torch.Tensor  # [k, V]
    drafts: tuple[int, ...]
    uniforms: dict[str, list[float]]  # "accept" [k], "residual" [k], "bonus" [1]


def random_distribution(vocab: int, generator: torch.Generator, zeros: bool) -> torch.Tensor:
    weights = torch.rand(vocab, generator=generator, dtype=torch.float64) ** 2
    if zeros:  # a top-k-like support: some tokens get probability 0 (never all)
        weights[torch.randperm(vocab, generator=generator)[: vocab // 2]] = 0.0
    return weights / weights.sum()


def generate_window_case(index: int, generator: torch.Generator) -> WindowCase:
    """Mixed edge cases: one-hot q (official SJD), q = p (always accept), p with zeros."""
    vocab = VERIFIER_VOCAB[index % len(VERIFIER_VOCAB)]
    k = 1 + index % 4
    target = torch.stack([random_distribution(vocab, generator, zeros=index % 3 == 2) for _ in range(k + 1)])
    drafts: list[int] = []
    rows = []
    for j in range(k):
        kind = (index + j) % 3
        q = random_distribution(vocab, generator, False) if kind == 0 else target[j].clone()
        token = int(torch.multinomial(q, 1, generator=generator))
        if kind == 2:  # the drawn token with a point-mass q
            q = torch.nn.functional.one_hot(torch.tensor(token), vocab).double()
        drafts.append(token)
        rows.append(q)
    uniforms = {
        name: torch.rand(n, generator=generator, dtype=torch.float64).tolist()
        for name, n in (("accept", k), ("residual", k), ("bonus", 1))
    }
    return WindowCase(target, torch.stack(rows), tuple(drafts), uniforms)


def run_window_case(case: WindowCase) -> dict[str, Any]:
    """The reference verifier on one window of cells 0..k (cell k is the bonus cell)."""
    k, vocab = len(case.drafts), case.target_probs.shape[1]
    drafts: list[Draft | None] = [Draft(t, case.draft_probs[j]) for j, t in enumerate(case.drafts)]
    state = JacobiState((None,) * (k + 1), (*drafts, None), 0)
    uniforms = {EventKey(name, 0, j): u for name in ("accept", "residual") for j, u in enumerate(case.uniforms[name])}
    uniforms[EventKey("fresh", 0, k)] = case.uniforms["bonus"][0]
    problem = Problem(_NullModel(vocab, k + 1), None, Layout(1, k + 1), Sampling())
    target = {cell: case.target_probs[cell] for cell in range(k + 1)}
    outcome = SpeculativeVerifier().verify(
        problem, state, Window(tuple(range(k + 1)), True), target, ScriptedRandomness(uniforms)
    )
    accepted = len(outcome.accepted)
    rejected = accepted < k
    return {
        "acceptance_probabilities": [
            compute_acceptance_probability(case.target_probs[j], case.draft_probs[j], t)
            for j, t in enumerate(case.drafts)
        ],
        "accepted": accepted,
        "rejected_at": accepted if rejected else None,
        "residual": compute_residual(case.target_probs[accepted], case.draft_probs[accepted]).tolist()
        if rejected
        else None,
        "residual_token": outcome.committed[accepted] if rejected else None,
        "bonus_token": None if rejected else outcome.committed[k],
        "committed": [outcome.committed[c] for c in sorted(outcome.committed)],
    }


class _NullModel:
    """Only its sizes are read: the verifier is handed p directly."""

    num_classes = 0

    def __init__(self, vocab_size: int, num_positions: int) -> None:
        self.vocab_size = vocab_size
        self.num_positions = num_positions

    def logits(self, *args: Any) -> torch.Tensor:
        raise AssertionError("the verifier vectors never call a model")


def verifier_vectors(cases: int = VERIFIER_CASES, seed: int = 0) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for index in range(cases):
        case = generate_window_case(index, generator)
        out.append(
            {
                "target_probs": case.target_probs.tolist(),
                "draft_probs": case.draft_probs.tolist(),
                "drafts": list(case.drafts),
                "uniforms": case.uniforms,
                "expected": run_window_case(case),
            }
        )
    return {"format": "jacobi-oracle/verifier", "version": VERSION, "cases": out}


# --- whole runs ---


def iterate_prefixes(vocab: int, length: int) -> Iterator[tuple[int, ...]]:
    """Every prefix of length 0 .. length-1, shortest first, lexicographic within a length."""
    frontier: list[tuple[int, ...]] = [()]
    for _ in range(length):
        yield from frontier
        frontier = [(*prefix, token) for prefix in frontier for token in range(vocab)]


def conditional_table(problem: Problem) -> list[dict[str, Any]]:
    """p(x_t | x_<t) for every prefix: the whole causal law of a toy model under `problem`."""
    return [
        {"prefix": list(prefix), "target_probs": causal_query(problem, prefix).tolist()}
        for prefix in iterate_prefixes(problem.model.vocab_size, problem.layout.num_cells)
    ]


def model_problem(name: str) -> Problem:
    case = build_model(name)
    return Problem(case.model, case.condition, case.layout, Sampling())


def describe_model(name: str, problem: Problem) -> dict[str, Any]:
    return {
        "vocab_size": problem.model.vocab_size,
        "height": problem.layout.height,
        "width": problem.layout.width,
        "condition": problem.condition,
        "sampling": {"temperature": 1.0, "top_k": None, "top_p": None, "cfg_scale": 1.0},
        "conditionals": conditional_table(problem),
    }


def run_vectors(progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    models = {name: model_problem(name) for name in RUN_MODELS}
    runs = []
    total = len(RUN_MODELS) * len(RUN_STRATEGIES) * RUN_SAMPLES
    for name, problem in models.items():
        for strategy_name, params in RUN_STRATEGIES:
            strategy = build_preset(strategy_name, **params)
            for sample in range(RUN_SAMPLES):
                decoded = strategy.decode_problem(problem, KeyedRandomness(RUN_SEED, sample))
                runs.append(
                    {
                        "model": name,
                        "strategy": strategy_name,
                        "params": params,
                        "seed": RUN_SEED,
                        "sample": sample,
                        "tokens": list(decoded.tokens),
                        "forward_passes": decoded.forward_passes,
                        "trace": [
                            {"proposed": list(t.proposed), "accepted": list(t.accepted), "committed": list(t.committed)}
                            for t in decoded.trace
                        ],
                    }
                )
                if progress is not None:
                    progress(len(runs), total)
    return {
        "format": "jacobi-oracle/sjd-runs",
        "version": VERSION,
        "models": {name: describe_model(name, problem) for name, problem in models.items()},
        "runs": runs,
    }


# --- writing and comparing ---


def generate_vectors(progress: Callable[[int, int], None] | None = None) -> dict[str, dict[str, Any]]:
    return {
        "keyed_randomness.json": keyed_randomness_vectors(),
        "gumbel_noise.json": gumbel_noise_vectors(),
        "verifier.json": verifier_vectors(),
        "sjd_runs.json": run_vectors(progress),
    }


def check_directory(directory: Path, must_exist: bool) -> None:
    """Verify `directory` is a directory (or, when writing, does not exist yet)."""
    if directory.exists() and not directory.is_dir():
        raise InvalidParameterError(f"vectors directory {str(directory)!r} exists and is not a directory")
    if must_exist and not directory.is_dir():
        raise InvalidParameterError(f"vectors directory {str(directory)!r} does not exist")


def write_vectors(directory: Path, vectors: dict[str, dict[str, Any]]) -> list[Path]:
    check_directory(directory, must_exist=False)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in vectors.items():
        path = directory / name
        path.write_text(json.dumps(content, indent=1) + "\n")
        paths.append(path)
    return paths


def read_vectors(path: Path) -> dict[str, Any]:
    # Verify the file exists and is a vector file
    if not path.is_file():
        raise InvalidParameterError(f"vector file {str(path)!r} does not exist")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidParameterError(f"vector file {str(path)!r} is not JSON: {error}") from error
    if not isinstance(content, dict) or content.get("version") != VERSION:
        raise InvalidParameterError(f"vector file {str(path)!r} is not version {VERSION} jacobi-oracle vectors")
    return content


def compare_vectors(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Differences between two JSON values: floats within PROB_TOLERANCE, all else exactly."""
    if isinstance(expected, float) or isinstance(actual, float):
        ok = isinstance(expected, (int, float)) and isinstance(actual, (int, float))
        if ok and abs(float(expected) - float(actual)) <= PROB_TOLERANCE:
            return []
        return [f"{where}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            return [f"{where}: keys {sorted(expected)} != {sorted(actual)}"]
        return [d for k in expected for d in compare_vectors(expected[k], actual[k], f"{where}.{k}")]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: length {len(expected)} != {len(actual)}"]
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in compare_vectors(e, a, f"{where}[{i}]")
        ]
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


def check_vectors(directory: Path, vectors: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Per file in `directory`, its differences from freshly generated `vectors`."""
    return {name: compare_vectors(read_vectors(directory / name), fresh, name) for name, fresh in vectors.items()}
