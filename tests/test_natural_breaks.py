"""Natural breaks computed with numpy are the ones mapclassify's Fisher–Jenks gives."""

from __future__ import annotations

import warnings

import mapclassify
import numpy as np
import pytest

from geo_service.viewer.natural_breaks import fisher_jenks_bins


def _samples() -> list[tuple[np.ndarray, int]]:
    """Skewed, tied, signed and rounded values of many sizes, with 2 to 7 classes."""
    rng = np.random.default_rng(2009)
    samples = []
    for trial in range(120):
        n, k = int(rng.integers(5, 150)), int(rng.integers(2, 8))
        x = (
            rng.lognormal(5, 2, n),
            rng.integers(0, 6, n).astype(float),  # many ties
            rng.normal(0, 1, n),
            np.round(rng.uniform(-3, 3, n), 1),
        )[trial % 4]
        if len(np.unique(x)) >= k:
            samples.append((x, k))
    return samples


@pytest.mark.parametrize("case", range(4))
def test_the_bins_are_mapclassifys_exactly(case: int) -> None:
    for x, k in _samples()[case::4]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (mapclassify: "Numba not installed")
            expected = mapclassify.FisherJenks(x, k=k).bins
        assert np.array_equal(fisher_jenks_bins(x, k), expected), (x.tolist(), k)


def test_the_order_of_the_values_does_not_matter() -> None:
    x = np.array([9.0, 1.0, 5.0, 2.0, 8.0, 1.5, 7.0, 30.0])
    assert fisher_jenks_bins(x, 3).tolist() == fisher_jenks_bins(np.sort(x), 3).tolist()
    assert fisher_jenks_bins(x, 3)[-1] == 30.0  # the last bound is the largest value
