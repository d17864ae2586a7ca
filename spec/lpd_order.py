"""LPD's generation order: group-size schedules and the locality-aware order (spec/lpd.md).

Content-independent and seeded: the order is a function of (grid, group sizes, repulsion,
seed) only, so it can be precomputed once per grid. Cells are raster indices.
"""

from __future__ import annotations

import math

import torch

from .errors import InvalidParameterError, check_count

# The published schedules (LPD, arXiv 2507.01957): 256 tokens in 20 steps, 1024 in 48.
PUBLISHED_STEPS = {256: 20, 1024: 48}
PUBLISHED_256_IN_20 = (1, 2, 4, 5, 7, 8, 10, 11, 12, 14, 15, 16, 17, 18, 18, 19, 19, 20, 20, 20)
# steps(N) = 20 * (N / 256) ** STEPS_EXPONENT passes through both published points (256, 20), (1024, 48)
STEPS_EXPONENT = math.log(48 / 20) / math.log(1024 / 256)
DEFAULT_REPULSION = 1  # Chebyshev radius: no two cells of a group are 8-neighbours (the paper gives no value)
HIGH_SCORE = 1.0  # a cell with proximity >= 1 touches selected context (an orthogonal neighbour or more)


# --- group-size schedules -------------------------------------------------------------------------


def compute_default_steps(num_cells: int) -> int:
    """Passes for a grid: the published count for 256 / 1024 cells, else the power law through them."""
    if num_cells < 1:
        raise InvalidParameterError(f"num_cells must be >= 1, got {num_cells!r}")
    if num_cells in PUBLISHED_STEPS:
        return PUBLISHED_STEPS[num_cells]
    steps: float = 20 * (num_cells / 256) ** STEPS_EXPONENT
    return min(num_cells, max(1, round(steps)))


def compute_group_sizes(num_cells: int, steps: int | None = None) -> tuple[int, ...]:
    """Cosine schedule: g_i = round(N * (cos(pi/2 * i/S) - cos(pi/2 * (i+1)/S))), i = 0..S-1.

    The unmasked fraction after step i is 1 - cos(pi/2 * i/S) (MaskGIT's cosine schedule);
    rounding each increment reproduces the published 256-in-20 list exactly, and 1024-in-48 sums
    to 1024 (last group 34). Elsewhere the rounding residue is moved by largest remainder and
    every group keeps at least one cell.
    """
    steps = compute_default_steps(num_cells) if steps is None else steps
    # Verify 1 <= steps <= cells
    if not isinstance(steps, int) or not 1 <= steps <= num_cells:
        raise InvalidParameterError(f"steps must be an int in 1..{num_cells} (the cells), got {steps!r}")
    exact = [
        num_cells * (math.cos(math.pi / 2 * i / steps) - math.cos(math.pi / 2 * (i + 1) / steps)) for i in range(steps)
    ]
    sizes = [max(1, round(x)) for x in exact]
    by_remainder = sorted(range(steps), key=lambda i: exact[i] - sizes[i], reverse=True)
    while sum(sizes) < num_cells:
        sizes[by_remainder.pop(0)] += 1
    while sum(sizes) > num_cells:
        shrink = max((i for i in range(steps) if sizes[i] > 1), key=lambda i: sizes[i] - exact[i])
        sizes[shrink] -= 1
    return tuple(sizes)


def check_group_sizes(group_sizes: tuple[int, ...], num_cells: int) -> None:
    """Verify a schedule: positive sizes that sum to the number of cells."""
    if not group_sizes or any(not isinstance(g, int) or g < 1 for g in group_sizes):
        raise InvalidParameterError(f"group sizes must be ints >= 1, got {group_sizes!r}")
    if sum(group_sizes) != num_cells:
        raise InvalidParameterError(f"group sizes {group_sizes!r} sum to {sum(group_sizes)}, the grid has {num_cells}")


# --- distances ------------------------------------------------------------------------------------


def chebyshev(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(abs(a[0] - b[0]), abs(a[1] - b[1]))


def compute_proximity(cell: tuple[int, int], selected: set[tuple[int, int]]) -> float:
    """Sum of 1 / Euclidean distance to the selected cells in the 8-neighbourhood."""
    r, c = cell
    return sum(
        1.0 / math.hypot(dr, dc)
        for dr in (-1, 0, 1)
        for dc in (-1, 0, 1)
        if (dr or dc) and (r + dr, c + dc) in selected
    )


# --- the orders -----------------------------------------------------------------------------------


def compute_locality_order(
    height: int,
    width: int,
    group_sizes: tuple[int, ...],
    repulsion: int = DEFAULT_REPULSION,
    seed: int = 0,
) -> tuple[tuple[int, ...], ...]:
    """The locality-aware order: one tuple of cells per group, in pick order.

    Group 0 is one seeded random cell (plus farthest-point fill if larger). Each later group:
    1. score every free cell by its proximity to the selected cells;
    2. take the cells with score >= 1 greedily by decreasing score, skipping any within
       Chebyshev distance <= repulsion of a cell already picked in this group;
    3. fill the rest by farthest-point sampling: the free cell whose Chebyshev (then Euclidean)
       distance to this group's picks (to the selected cells while the group is empty) is largest.
    Ties are broken by one seeded random rank per cell.
    """
    check_group_sizes(group_sizes, height * width)
    check_count("repulsion", repulsion, minimum=0)
    rank = torch.randperm(height * width, generator=torch.Generator().manual_seed(seed)).tolist()
    tie = {divmod(cell, width): rank[cell] for cell in range(height * width)}
    selected: set[tuple[int, int]] = set()
    groups: list[tuple[int, ...]] = []
    for size in group_sizes:
        free = [rc for rc in tie if rc not in selected]
        if not selected:
            picked = [min(free, key=tie.__getitem__)]
        else:
            picked = pick_high_scores(free, selected, size, repulsion, tie)
        picked = fill_farthest(free, selected, picked, size, tie)
        selected.update(picked)
        groups.append(tuple(r * width + c for r, c in picked))
    return tuple(groups)


def pick_high_scores(
    free: list[tuple[int, int]],
    selected: set[tuple[int, int]],
    size: int,
    repulsion: int,
    tie: dict[tuple[int, int], int],
) -> list[tuple[int, int]]:
    """Step 2: greedy high-proximity cells, with repulsion inside the group."""
    scores = {rc: compute_proximity(rc, selected) for rc in free}
    candidates = sorted((rc for rc in free if scores[rc] >= HIGH_SCORE), key=lambda rc: (-scores[rc], tie[rc]))
    picked: list[tuple[int, int]] = []
    for rc in candidates:
        if len(picked) == size:
            break
        if all(chebyshev(rc, other) > repulsion for other in picked):
            picked.append(rc)
    return picked


def fill_farthest(
    free: list[tuple[int, int]],
    selected: set[tuple[int, int]],
    picked: list[tuple[int, int]],
    size: int,
    tie: dict[tuple[int, int], int],
) -> list[tuple[int, int]]:
    """Step 3: farthest-point sampling until the group has `size` cells."""
    picked = list(picked)
    while len(picked) < size:
        anchors = picked or list(selected)
        rest = [rc for rc in free if rc not in picked]

        def spread(rc: tuple[int, int], anchors: list[tuple[int, int]] = anchors) -> tuple[int, float, int]:
            if not anchors:
                return (0, 0.0, -tie[rc])
            cheb = min(chebyshev(rc, a) for a in anchors)
            euclid = min(math.dist(rc, a) for a in anchors)
            return (cheb, euclid, -tie[rc])

        picked.append(max(rest, key=spread))
    return picked


def compute_raster_order(num_cells: int, group_sizes: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Consecutive raster runs of the given sizes."""
    check_group_sizes(group_sizes, num_cells)
    starts = [sum(group_sizes[:i]) for i in range(len(group_sizes))]
    return tuple(tuple(range(s, s + g)) for s, g in zip(starts, group_sizes, strict=True))


def compute_random_order(num_cells: int, group_sizes: tuple[int, ...], seed: int = 0) -> tuple[tuple[int, ...], ...]:
    """A seeded uniformly random permutation cut into groups (LPD's training orders)."""
    check_group_sizes(group_sizes, num_cells)
    perm = torch.randperm(num_cells, generator=torch.Generator().manual_seed(seed)).tolist()
    starts = [sum(group_sizes[:i]) for i in range(len(group_sizes))]
    return tuple(tuple(perm[s : s + g]) for s, g in zip(starts, group_sizes, strict=True))
