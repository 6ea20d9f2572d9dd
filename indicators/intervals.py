"""What an attacker can deduce about hidden cells: each one's attainable interval, by linear
programming (HiGHS) over the equations the published values leave.

The equations are those of the linked table with every published cell replaced by its
value. To stay on the safe side the attacker is given the exact right-hand sides the true
values make (an equation the data do not meet exactly is taken as met), and unknowns with
no figure anywhere (cells never loaded, pieces of partial crosswalk links) as the values
closest to what the published cells say.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import highspy
import numpy as np
from scipy import sparse

INFINITY = float("inf")


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """HiGHS prints a banner on standard output when the first solver is made."""
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _solver() -> highspy.Highs:
    with _quiet_stdout():
        solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    return solver


class Intervals:
    """Solves the attainable intervals of the variables of one system of equations."""

    def __init__(self) -> None:
        self._highs = _solver()

    def right_hand_sides(
        self, matrix: sparse.csr_matrix, truth: np.ndarray, published_rhs: np.ndarray
    ) -> np.ndarray:
        """The right-hand sides A·x the true values make; unknowns (nan) are imputed as the
        non-negative values that come closest to the published right-hand sides."""
        unknown = np.isnan(truth)
        known_part = matrix[:, ~unknown] @ truth[~unknown]
        if not unknown.any():
            return np.asarray(known_part, dtype=float)
        a_unknown = matrix[:, unknown].tocsc()
        m, k = a_unknown.shape
        # min Σ s⁺ + s⁻  s.t.  A_u y + s⁺ − s⁻ = b_published − A_k x_true, y, s ≥ 0
        eye = sparse.identity(m, format="csc")
        full = sparse.hstack([a_unknown, eye, -eye], format="csc")
        cost = np.concatenate([np.zeros(k), np.ones(2 * m)])
        target = published_rhs - known_part
        y = self._solve_for_point(full, cost, target)[:k]
        return np.asarray(known_part + a_unknown @ y, dtype=float)

    def _solve_for_point(
        self, matrix: sparse.csc_matrix, cost: np.ndarray, rhs: np.ndarray
    ) -> np.ndarray:
        self._load(matrix, rhs, cost)
        self._highs.run()
        solution = np.array(self._highs.getSolution().col_value, dtype=float)
        return np.maximum(solution, 0.0)

    def _load(self, matrix: sparse.csc_matrix, rhs: np.ndarray, cost: np.ndarray) -> None:
        m, n = matrix.shape
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n, m
        lp.col_cost_ = np.asarray(cost, dtype=float)
        lp.col_lower_ = np.zeros(n)
        lp.col_upper_ = np.full(n, highspy.kHighsInf)
        lp.row_lower_ = np.asarray(rhs, dtype=float)
        lp.row_upper_ = np.asarray(rhs, dtype=float)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
        lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
        lp.a_matrix_.value_ = matrix.data.astype(float)
        self._highs.clearModel()
        self._highs.passModel(lp)

    def solve(
        self, matrix: sparse.csr_matrix, rhs: np.ndarray, targets: Sequence[int]
    ) -> list[tuple[float, float]]:
        """min and max of each target variable subject to A·x = rhs, x ≥ 0."""
        n = matrix.shape[1]
        self._load(matrix.tocsc(), rhs, np.zeros(n))
        result = []
        for var in targets:
            self._highs.changeColCost(int(var), 1.0)
            low = self._optimum(highspy.ObjSense.kMinimize)
            high = self._optimum(highspy.ObjSense.kMaximize)
            self._highs.changeColCost(int(var), 0.0)
            result.append((max(low, 0.0), high))
        return result

    def _optimum(self, sense: highspy.ObjSense) -> float:
        self._highs.changeObjectiveSense(sense)
        self._highs.run()
        status = self._highs.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            return float(self._highs.getInfo().objective_function_value)
        if status in (
            highspy.HighsModelStatus.kUnbounded,
            highspy.HighsModelStatus.kUnboundedOrInfeasible,
        ):
            return INFINITY if sense == highspy.ObjSense.kMaximize else 0.0
        # numerically infeasible: report nothing deducible rather than a made-up bound
        # would be unsafe; report the narrowest interval instead, so more is hidden
        return float("nan")
