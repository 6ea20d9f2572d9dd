"""The Folium map viewer."""
