"""The exact-oracle table of `jacobi-oracle demo`: its default toy shows a lossy preset's loss,
and a toy too small to show loss is captioned as such."""

from __future__ import annotations

from jacobi_oracle.cli.demo import DEFAULT_TOY, exact_markdown, exact_table, toy_caption

LOSS_VISIBLE = 0.05  # zipar's exact TV on hash is ~0.42; on hash-tiny it is ~1e-17


def test_default_toy_shows_the_loss_of_a_2d_preset() -> None:
    (verdict,) = exact_table(["zipar"], DEFAULT_TOY)
    assert verdict.total_variation > LOSS_VISIBLE and not verdict.lossless
    caption = toy_caption(DEFAULT_TOY, [verdict])
    assert "too small" not in caption and "zipar" in caption


def test_negative_control_the_tiny_toy_hides_that_loss_and_its_caption_says_so() -> None:
    (verdict,) = exact_table(["zipar"], "hash-tiny")
    assert verdict.total_variation < LOSS_VISIBLE  # the degenerate case the caption warns about
    caption = toy_caption("hash-tiny", [verdict])
    assert "too small" in caption and "jacobi-oracle audit" in caption
    assert exact_markdown([verdict], caption).startswith(caption)
