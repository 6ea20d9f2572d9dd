"""The core every part uses: errors, codes and text, names, zoom bands, the tile grid, CRSs
and GeoJSON input. It imports no web framework and opens no database connection."""
