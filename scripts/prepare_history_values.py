"""Write data/vn/population-2009-communes-2025.csv and .json: the 2009 census population
carried onto the 2025 communes, exactly as `geo-service demo --history` computes it (the 2009
communes, the crosswalk 2009 → 2025 built from geometry with WorldPop population weights, the
carry-over), so that the default demo ships two periods of a commune indicator.

    GEO_SERVICE_HOME=/tmp/history .venv/bin/geo-service demo --history --no-serve
    GEO_SERVICE_HOME=/tmp/history .venv/bin/python scripts/prepare_history_values.py
"""

from __future__ import annotations

from geo_service.db import connect, database_url
from geo_service.demo import DATA_DIR, export_carried_2009
from geo_service.settings import ServiceSettings


def main() -> None:
    """Export from the database of GEO_SERVICE_HOME (or DATABASE_URL) into data/vn/."""
    with connect(database_url(ServiceSettings())) as conn:
        written = export_carried_2009(conn, DATA_DIR)
    print(f"{written} communes written to {DATA_DIR}")


if __name__ == "__main__":
    main()
