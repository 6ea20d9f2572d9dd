"""`python -m geo_service` is the same as the `geo-service` command."""

from geo_service.cli import main

main()
