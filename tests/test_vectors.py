"""Test vectors (spec/vectors.md): the reference reproduces the committed vectors, and an
implementation written from the format description alone (below, in plain Python: no torch,
no jacobi_oracle) reproduces the reference's tokens from the JSON files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from jacobi_oracle.cli import main
from jacobi_oracle.cli import vectors as vectors_cli
from jacobi_oracle.oracle.vectors import FILES, check_vectors, compare_vectors, generate_vectors

COMMITTED = Path(__file__).parent / "vectors"
MASK = (1 << 64) - 1


@pytest.fixture(scope="module")
def fresh() -> dict[str, dict[str, Any]]:
    return generate_vectors()


def test_the_reference_reproduces_the_committed_vectors(fresh: dict[str, dict[str, Any]]) -> None:
    differences = check_vectors(COMMITTED, fresh)
    assert differences == {name: [] for name in FILES}


def test_a_changed_token_is_reported_as_a_difference(fresh: dict[str, dict[str, Any]]) -> None:
    broken = copy.deepcopy(fresh["sjd_runs.json"])
    broken["runs"][5]["tokens"][0] ^= 1
    assert compare_vectors(fresh["sjd_runs.json"], broken, "runs")


# --- an independent consumer, written from spec/vectors.md ---


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def uniform_hash(seed: int, sample: int, purpose_id: int, iteration: int, cell: int) -> int:
    h = splitmix64(seed & MASK)
    for part in (sample, purpose_id, iteration, cell):
        h = splitmix64(h ^ (part & MASK))
    return h


def uniform(seed: int, sample: int, purpose_id: int, iteration: int, cell: int) -> float:
    return (uniform_hash(seed, sample, purpose_id, iteration, cell) >> 11) / float(1 << 53)


def crc32(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


def categorical(probs: list[float], u: float) -> int:
    cumulative, total = [], 0.0
    for p in probs:
        total += p
        cumulative.append(total)
    t = sum(1 for c in cumulative if c <= u * total)
    t = min(t, len(probs) - 1)
    while probs[t] <= 0:
        t -= 1
    return t


def residual(p: list[float], q: list[float]) -> list[float]:
    excess = [max(0.0, a - b) for a, b in zip(p, q, strict=True)]
    mass = sum(excess)
    return [a / sum(p) for a in p] if mass <= 1e-15 else [e / mass for e in excess]


def consume_run(model: dict[str, Any], run: dict[str, Any]) -> tuple[list[int], int]:
    """Decode one run from the JSON alone: the conditional table and the keyed hash."""
    table = {tuple(row["prefix"]): row["target_probs"] for row in model["conditionals"]}
    cells, vocab = model["height"] * model["width"], model["vocab_size"]

    def u(purpose: str, iteration: int, cell: int) -> float:
        return uniform(run["seed"], run["sample"], crc32(purpose), iteration, cell)

    if run["strategy"] == "ar":
        tokens: list[int] = []
        for t in range(cells):
            tokens.append(categorical(table[tuple(tokens)], u("sample", t, t)))
        return tokens, cells
    window, one_hot = run["params"]["window"], run["strategy"] == "sjd"
    flat = [1.0 / vocab] * vocab
    committed: list[int] = []
    drafts: dict[int, tuple[int, list[float]]] = {}
    it = 0
    while len(committed) < cells:
        span = range(len(committed), min(len(committed) + window, cells))
        for c in span[:-1]:
            if c not in drafts:
                tok = categorical(flat, u("init", it, c))
                drafts[c] = (tok, [float(v == tok) for v in range(vocab)] if one_hot else flat)
        sequence = committed + [drafts[c][0] for c in span if c in drafts]
        p = {c: table[tuple(sequence[:c])] for c in span}
        for i, c in enumerate(span):
            if c not in drafts:
                committed.append(categorical(p[c], u("fresh", it, c)))
                break
            tok, q = drafts.pop(c)
            if u("accept", it, c) < min(1.0, p[c][tok] / q[tok]):
                committed.append(tok)
                continue
            committed.append(categorical(residual(p[c], q), u("residual", it, c)))
            for d in span[i + 1 :]:
                drafts[d] = (categorical(p[d], u("fresh", it, d)), p[d])
            break
        it += 1
    return committed, it


def load(name: str) -> dict[str, Any]:
    content: dict[str, Any] = json.loads((COMMITTED / name).read_text())
    return content


def test_an_independent_consumer_reproduces_the_keyed_hash() -> None:
    vectors = load("keyed_randomness.json")
    for mix in vectors["splitmix64"]:
        assert splitmix64(int(mix["input"])) == int(mix["output"])
    for case in vectors["cases"]:
        assert crc32(case["purpose"]) == case["purpose_id"]
        args = (int(case["seed"]), int(case["sample"]), case["purpose_id"], case["iteration"], case["cell"])
        assert uniform(*args) == case["uniform"]


def test_an_independent_consumer_reproduces_the_gumbel_noise() -> None:
    """G(key)[t] = -log(-log(((h_t >> 11) + 1/2) 2^-53)), h_t = splitmix64(splitmix64(h ^ TAG) ^ t),
    in plain Python floats: the bytes agree with the reference to 1 ulp-level (1e-15 relative),
    since libm's log and torch's vectorised log may differ in the last bit; the argmaxes agree."""
    import math
    import struct

    vectors = load("gumbel_noise.json")
    vocab, tag = vectors["vocab_size"], vectors["vector_tag"]
    for case in vectors["cases"]:
        h = int(case["hash"])
        fields = (int(case["seed"]), int(case["sample"]), crc32(case["purpose"]), case["iteration"], case["cell"])
        assert h == uniform_hash(*fields)
        base = splitmix64(h ^ tag)
        mine = [-math.log(-math.log(((splitmix64(base ^ t) >> 11) + 0.5) / float(1 << 53))) for t in range(vocab)]
        committed = list(struct.unpack(f"<{vocab}d", bytes.fromhex(case["gumbel_hex"])))
        assert committed == case["gumbel"]
        assert mine == pytest.approx(committed, rel=1e-15, abs=1e-15)
        for law, expected in zip(vectors["laws"], case["argmax"], strict=True):
            scores = [math.log(p) + g if p > 0 else -math.inf for p, g in zip(law, mine, strict=True)]
            assert scores.index(max(scores)) == expected


def test_an_independent_consumer_reproduces_every_run() -> None:
    vectors = load("sjd_runs.json")
    for run in vectors["runs"]:
        tokens, passes = consume_run(vectors["models"][run["model"]], run)
        assert (tokens, passes) == (run["tokens"], run["forward_passes"]), run


def test_the_consumer_notices_a_wrong_draft_law() -> None:
    # negative control: decoding the one-hot-q runs as if q were uniform changes some tokens
    vectors = load("sjd_runs.json")
    runs = [r for r in vectors["runs"] if r["strategy"] == "sjd"]
    mismatches = sum(
        consume_run(vectors["models"][r["model"]], {**r, "strategy": "sjd-uniform"})[0] != r["tokens"] for r in runs
    )
    assert mismatches > 0


def test_an_independent_consumer_reproduces_the_verifier_cases() -> None:
    for case in load("verifier.json")["cases"]:
        p, q, drafts, uniforms = case["target_probs"], case["draft_probs"], case["drafts"], case["uniforms"]
        committed = []
        for j, tok in enumerate(drafts):
            if uniforms["accept"][j] < min(1.0, p[j][tok] / q[j][tok]):
                committed.append(tok)
                continue
            committed.append(categorical(residual(p[j], q[j]), uniforms["residual"][j]))
            break
        else:
            committed.append(categorical(p[len(drafts)], uniforms["bonus"][0]))
        assert committed == case["expected"]["committed"]


def test_the_vectors_command_checks_a_directory_and_rejects_bad_input(
    tmp_path: Path,
    fresh: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(vectors_cli, "generate_vectors", lambda progress=None: fresh)
    assert main(["vectors", str(COMMITTED), "--check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    assert main(["vectors", str(tmp_path / "none"), "--check"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["vectors", str(tmp_path / "written"), "--json"]) == 0
    runs = json.loads((tmp_path / "written" / "sjd_runs.json").read_text())
    runs["runs"][0]["forward_passes"] += 1
    (tmp_path / "written" / "sjd_runs.json").write_text(json.dumps(runs))
    capsys.readouterr()
    assert main(["vectors", str(tmp_path / "written"), "--check", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False and len(report["differences"]["sjd_runs.json"]) == 1
