"""Statistical indicators: catalogue, values, loading, zonal statistics, carry-over."""
