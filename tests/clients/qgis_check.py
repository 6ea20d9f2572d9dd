"""QGIS (PyQGIS, headless) against a live service, run by Debian's python3 with python3-qgis
(tests/test_clients.py): prints one JSON object of what QGIS saw.

Usage: /usr/bin/python3 tests/clients/qgis_check.py http://127.0.0.1:PORT
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsFeatureRequest,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsRectangle,
    QgsVectorLayer,
    QgsVectorTileLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402

COMMUNES = "commune-2025"


def features(base: str) -> dict[str, Any]:
    """The OAPIF provider with the vendor parameter in the service URL, and a subset."""
    layer = QgsVectorLayer(f"url='{base}/?indicator=density' typename='{COMMUNES}'", "c", "OAPIF")
    first = list(layer.getFeatures(QgsFeatureRequest().setLimit(5)))
    dense = QgsVectorLayer(f"url='{base}/?indicator=density' typename='{COMMUNES}'", "d", "OAPIF")
    dense.setSubsetString("parent_code = '01' AND density > 1000")
    selected = [(f["parent_code"], f["density"]) for f in dense.getFeatures()]
    return {
        "valid": layer.isValid(),
        "fields": [f.name() for f in layer.fields()],
        "count": sum(1 for _ in layer.getFeatures()),
        "densities": [f["density"] for f in first],
        "subset": selected,
    }


def tiles(base: str) -> dict[str, Any]:
    """The vector tiles as an XYZ vector tile layer, drawn over Hà Nội."""
    template = f"{base}/collections/{COMMUNES}/tiles/WebMercatorQuad/%7Bz%7D/%7Bx%7D/%7By%7D"
    layer = QgsVectorTileLayer(f"type=xyz&url={template}&zmin=0&zmax=12", "tiles")
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    settings.setExtent(QgsRectangle(11_770_000, 2_400_000, 11_820_000, 2_450_000))
    settings.setOutputSize(QSize(128, 128))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    painted = sum(
        1 for x in range(0, 128, 4) for y in range(0, 128, 4) if image.pixelColor(x, y).alpha() > 0
    )
    return {"valid": layer.isValid(), "painted": painted, "errors": len(job.errors())}


def geopackage(base: str) -> dict[str, Any]:
    """A GeoPackage download opened in place through /vsicurl/ (HEAD, then byte ranges)."""
    url = f"/vsicurl/{base}/collections/{COMMUNES}/items?f=gpkg&indicator=density"
    layer = QgsVectorLayer(url, "gpkg", "ogr")
    return {
        "valid": layer.isValid(),
        "count": layer.featureCount(),
        "fields": [f.name() for f in layer.fields()],
    }


def main() -> None:
    """Run every check and print the results."""
    base = sys.argv[1].rstrip("/")
    app = QgsApplication([], False)
    app.initQgis()
    try:
        result = {
            "version": Qgis.QGIS_VERSION,
            "features": features(base),
            "tiles": tiles(base),
            "geopackage": geopackage(base),
        }
    finally:
        app.exitQgis()
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
