"""The map pages: the choropleth viewer and the EA editor, built with Folium."""
