"""Write the example notebooks in notebooks/ (kept as code so they stay reviewable)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

CHOROPLETH = [
    new_markdown_cell(
        "# Population density of Hà Nội's communes\n\n"
        "Fetch communes with an indicator as GeoJSON from the service (OGC API – Features), "
        "load them into geopandas and draw a choropleth. Set `GEO_SERVICE_URL` if the "
        "service is not at http://127.0.0.1:8000."
    ),
    new_code_cell(
        "import json\nimport os\nimport urllib.parse\nimport urllib.request\n\n"
        "import geopandas as gpd\nimport matplotlib\n\nmatplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n\n"
        "BASE = os.environ.get('GEO_SERVICE_URL', 'http://127.0.0.1:8000')\n"
        "OUTPUT = os.environ.get('NOTEBOOK_OUTPUT', '.')\n\n\n"
        "def get_json(path, **params):\n"
        "    url = f'{BASE}{path}?{urllib.parse.urlencode(params)}' if params else BASE + path\n"
        "    with urllib.request.urlopen(url) as response:\n"
        "        return json.load(response)"
    ),
    new_markdown_cell("Which indicators exist, and what does `density` measure?"),
    new_code_cell(
        "density = get_json('/indicators/density')\n"
        "print(density['name_en'], '-', density['unit'], '-', density['description'])\n"
        "print([(s['vintage'], s['level'], s['periods']) for s in density['series']])"
    ),
    new_markdown_cell(
        "Communes of Hà Nội (province code `01`) in the 2025 boundaries, with density and "
        "population joined by official code and vintage. `zoom=9` asks for generalised "
        "geometry, which is plenty for a map."
    ),
    new_code_cell(
        "page = get_json('/collections/commune-2025/items', parent='01', limit=1000, zoom=9,\n"
        "                indicator='density,population', period='2025')\n"
        "communes = gpd.GeoDataFrame.from_features(page['features'], crs='OGC:CRS84')\n"
        "communes['code'] = [f['id'] for f in page['features']]\n"
        "print(page['numberMatched'], 'communes;', communes['density_status'].value_counts()"
        ".to_dict())\n"
        "communes.sort_values('density', ascending=False)[['code', 'name', 'density']].head()"
    ),
    new_markdown_cell(
        "A choropleth of the density (a rate, not a raw count), classified into quantiles. "
        "Units whose value is suppressed or not available are drawn in grey."
    ),
    new_code_cell(
        "ax = communes.plot(column='density', scheme='Quantiles', k=5, cmap='YlOrRd',\n"
        "                   legend=True, edgecolor='white', linewidth=0.2,\n"
        "                   missing_kwds={'color': 'lightgrey', 'label': 'no value'},\n"
        "                   figsize=(8, 8))\n"
        "ax.set_title('Population density, Hà Nội communes, 2025 (persons/km²)')\n"
        "ax.set_axis_off()\n"
        "path = os.path.join(OUTPUT, 'hanoi_density.png')\n"
        "plt.savefig(path, dpi=80)\n"
        "print('saved', path)"
    ),
    new_markdown_cell("Paging: walk the `next` links to fetch every commune of Vietnam."),
    new_code_cell(
        "url = f'{BASE}/collections/commune-2025/items?limit=1000&properties=code&zoom=0'\n"
        "codes = []\n"
        "while url:\n"
        "    with urllib.request.urlopen(url) as response:\n"
        "        body = json.load(response)\n"
        "    codes += [f['id'] for f in body['features']]\n"
        "    url = next((l['href'] for l in body['links'] if l['rel'] == 'next'), None)\n"
        "assert len(codes) == len(set(codes)) == body['numberMatched']\n"
        "print(len(codes), 'communes fetched')"
    ),
]


def main() -> None:
    """Write every notebook."""
    NOTEBOOKS.mkdir(exist_ok=True)
    notebook = new_notebook(
        cells=CHOROPLETH,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(notebook, NOTEBOOKS / "indicator_choropleth.ipynb")


if __name__ == "__main__":
    main()
