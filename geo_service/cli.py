"""The `geo-service` command line."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from boundaries.load import LoadSummary, write_report
from geo_core.errors import GeoServiceError
from geo_service.settings import PRIVATE_UMASK, ServiceSettings

app = typer.Typer(
    help="Vietnam statistical mapping service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The database (embedded unless DATABASE_URL/PGHOST is set).", no_args_is_help=True
)
load_app = typer.Typer(help="Load data (all or nothing).", no_args_is_help=True)
vintage_app = typer.Typer(help="Boundary vintages.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(load_app, name="load")
app.add_typer(vintage_app, name="vintage")

console = Console(stderr=True)


def _fail(exc: GeoServiceError) -> None:
    # (escaped: messages quote file names and field values, which may hold [brackets])
    console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
    raise typer.Exit(2)


def _check_writable(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written before doing any work."""
    folder = path.parent if str(path.parent) else Path(".")
    if (
        path.is_dir()
        or not folder.is_dir()
        or not os.access(folder, os.W_OK)
        or (path.exists() and not os.access(path, os.W_OK))
    ):
        _fail(
            GeoServiceError(
                f"{option} {path}: cannot write there (no such folder, or no permission)",
                parameter=option,
            )
        )


def _settings() -> ServiceSettings:
    try:
        return ServiceSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"GEO_SERVICE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        _fail(GeoServiceError(f"bad setting: {problems}"))
        raise  # (unreachable: _fail exits)


def _connect() -> psycopg.Connection:
    """A migrated connection to the configured (or embedded, started on demand) database."""
    from geo_service.db import connect, database_url

    conn = connect(database_url(_settings()))
    _prepare(conn)
    return conn


@contextmanager
def _writing() -> Iterator[psycopg.Connection]:
    """A connection for a command that writes: what the write left withheld (a write marks
    the indicators whose disclosure protection it touches pending) is protected before the
    command returns, as the loaders do, so nothing reads as suppressed until a service
    protects it; not when the command fails."""
    from indicators.protect import refresh

    with _connect() as conn:
        yield conn
        for group in refresh(conn):
            _print_notes(group.failing, "below protection")


def _prepare(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations (their names) and, on the embedded database, make the web
    service's restricted login."""
    from geo_service.db import grant_service_login, service_url
    from geo_service.migrate import migrate
    from geo_service.settings import DatabaseSettings

    applied = migrate(conn)
    if not DatabaseSettings().configured:
        grant_service_login(conn, service_url(_settings()))
    return applied


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL cluster (created on first use)."""
    from geo_service.db import local_cluster

    cluster = local_cluster(_settings())
    try:
        state = cluster.start()
    except GeoServiceError as exc:
        _fail(exc)
    if cluster.moved_from is not None:
        console.print(
            f"[yellow]port {cluster.moved_from} was taken by another program: the "
            f"database now listens on {state.port}[/yellow] (restart services that "
            "use the old address)"
        )
    console.print(f"database running on 127.0.0.1:{state.port} ({escape(str(state.data_dir))})")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster."""
    from geo_service.db import local_cluster

    stopped = local_cluster(_settings()).stop()
    console.print("database stopped" if stopped else "database was not running")


@db_app.command("status")
def db_status() -> None:
    """Say whether the database is configured, embedded, running."""
    from geo_service.db import local_cluster
    from geo_service.settings import DatabaseSettings

    if DatabaseSettings().configured:
        typer.echo("external database (DATABASE_URL / PG* variables)")
        return
    cluster = local_cluster(_settings())
    state = cluster.load_state()
    if state is None:
        typer.echo("embedded database not created yet (geo-service db start)")
        raise typer.Exit(1)
    running = cluster.is_running()
    typer.echo(
        f"embedded database {'running' if running else 'stopped'}: "
        f"port {state.port}, data {state.data_dir}"
    )
    if not running:
        raise typer.Exit(1)


@db_app.command("url")
def db_url() -> None:
    """Print the connection URL (starts the embedded cluster if needed)."""
    from geo_service.db import database_url

    try:
        typer.echo(database_url(_settings()))
    except GeoServiceError as exc:
        _fail(exc)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations (idempotent)."""
    from geo_service.db import connect, database_url
    from geo_service.migrate import current_version

    with connect(database_url(_settings())) as conn:
        try:
            applied = _prepare(conn)
        except GeoServiceError as exc:
            _fail(exc)
        version = current_version(conn)
    typer.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    typer.echo(f"schema version {version}")


@vintage_app.command("add")
def vintage_add(
    vintage_id: Annotated[str, typer.Argument(metavar="ID", help="e.g. 2025")],
    valid_from: Annotated[str, typer.Option(help="first day in force, YYYY-MM-DD")],
    valid_to: Annotated[str | None, typer.Option(help="first day no longer in force")] = None,
    description: str = "",
    source: str = "",
    licence: str = "",
    update: Annotated[bool, typer.Option(help="overwrite an existing vintage")] = False,
) -> None:
    """Create a boundary vintage."""
    from boundaries.vintages import Vintage, add_vintage

    try:
        vintage = Vintage(
            vintage_id,
            date.fromisoformat(valid_from),
            date.fromisoformat(valid_to) if valid_to else None,
            description,
            source,
            licence,
        )
    except ValueError as exc:
        console.print(f"[red]error:[/red] bad date: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    with _writing() as conn:
        try:
            changed = add_vintage(conn, vintage, update)
        except GeoServiceError as exc:
            _fail(exc)
    typer.echo(f"vintage {vintage_id} {'saved' if changed else 'already exists (use --update)'}")


@vintage_app.command("list")
def vintage_list() -> None:
    """List the boundary vintages."""
    from boundaries.vintages import list_vintages

    with _connect() as conn:
        for v in list_vintages(conn):
            typer.echo(f"{v.id}\t{v.valid_from}\t{v.valid_to or ''}\t{v.description}")


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        disable=not sys.stderr.isatty(),
    )


@load_app.command("boundaries")
def load_boundaries_cmd(
    paths: Annotated[list[Path], typer.Argument(help="files (any GDAL vector format)")],
    vintage: Annotated[str, typer.Option(help="boundary vintage, e.g. 2025")],
    level: Annotated[str, typer.Option(help="province, district or commune")],
    code_field: Annotated[str, typer.Option(help="field holding the official code")],
    name_field: Annotated[str, typer.Option(help="field holding the official name")],
    parent_field: Annotated[str | None, typer.Option(help="field holding the parent code")] = None,
    type_field: Annotated[str | None, typer.Option(help="field holding the unit type")] = None,
    src_crs: Annotated[str | None, typer.Option(help="CRS of the input, e.g. EPSG:32648")] = None,
    layer: Annotated[str | None, typer.Option(help="layer to read from a multi-layer file")] = None,
    code_pattern: Annotated[str | None, typer.Option(help="regex for codes")] = None,
    pad_codes: Annotated[bool, typer.Option(help="restore lost leading zeros")] = False,
    recode: Annotated[
        Path | None, typer.Option(help="CSV of code corrections: source_code,code,reason")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="write every repair and warning to this CSV")
    ] = None,
    parent_level: Annotated[str | None, typer.Option(help="level of the parents")] = None,
    replace: Annotated[bool, typer.Option(help="replace units already loaded")] = False,
    gap_width: Annotated[float, typer.Option(help="close gaps narrower than this (°)")] = 0.0,
    encoding: Annotated[
        str | None,
        typer.Option(
            help="encoding of the file's text when it does not say (e.g. a .dbf without .cpg): "
            "UTF-8, cp1258 …"
        ),
    ] = None,
) -> None:
    """Check and load boundaries in one transaction (nothing is written on any error)."""
    from boundaries.checks import FieldMap
    from boundaries.load import LoadOptions, load_boundaries, read_recode_file

    if report:
        _check_writable(report, "--report")
    try:
        options = LoadOptions(
            vintage,
            level,
            FieldMap(code_field, name_field, parent_field, type_field),
            layer=layer,
            src_crs=src_crs,
            code_pattern=code_pattern,
            pad_codes=pad_codes,
            recode=read_recode_file(recode) if recode else {},
            parent_level=parent_level,
            replace=replace,
            gap_width=gap_width,
            encoding=encoding,
        )
    except GeoServiceError as exc:
        _fail(exc)
    with _writing() as conn, _progress_bar() as bar:
        tasks: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)  # type: ignore[arg-type]

        try:
            summary = load_boundaries(conn, paths, options, progress)
        except GeoServiceError as exc:
            _fail(exc)
    if report:
        write_report(summary.report, report)
    _print_load_summary(summary, level, vintage)


def _print_load_summary(summary: LoadSummary, level: str, vintage: str, shown: int = 20) -> None:
    report = summary.report
    for kind, problems in (("repaired", report.repaired), ("warning", report.warnings)):
        for problem in problems[:shown]:
            console.print(f"[yellow]{kind}[/yellow] {escape(str(problem))}", highlight=False)
        if len(problems) > shown:
            console.print(f"... {len(problems) - shown} more {kind} (see --report FILE)")
    typer.echo(
        f"{summary.loaded} {level} units loaded into vintage {vintage} "
        f"({summary.replaced} replaced, {len(report.repaired)} repaired, "
        f"{len(report.warnings)} warnings, 0 rejected) in {summary.seconds:.1f} s"
    )


@load_app.command("lines")
def load_lines_cmd(
    path: Annotated[Path, typer.Argument(help="a file of lines (any GDAL vector format)")],
    kind: Annotated[
        str, typer.Option(help="road, river or railway (for every feature of the file)")
    ] = "road",
    kind_field: Annotated[
        str | None,
        typer.Option(
            help="a field giving each feature's kind instead (road/main/secondary, "
            "river/stream/canal, railway/rail)"
        ),
    ] = None,
    name_field: Annotated[str | None, typer.Option(help="field holding the name")] = None,
    layer: Annotated[str | None, typer.Option(help="layer to read from a multi-layer file")] = None,
    src_crs: Annotated[str | None, typer.Option(help="CRS of the input, e.g. EPSG:32648")] = None,
    replace: Annotated[bool, typer.Option(help="replace the lines loaded from this file")] = False,
) -> None:
    """Load roads, rivers or railways that generated EAs follow (all or nothing): every
    feature must be a line in a known CRS, and at least one must cross a commune."""
    from boundaries.lines import load_lines

    with _connect() as conn:
        try:
            summary = load_lines(conn, path, kind, layer, src_crs, name_field, kind_field, replace)
        except GeoServiceError as exc:
            _fail(exc)
    typer.echo(
        f"{summary.loaded} lines loaded from {path.name} ({summary.outside} outside every "
        f"commune left out, {summary.replaced} replaced) in {summary.seconds:.1f} s"
    )


@load_app.command("crosswalk")
def load_crosswalk_cmd(
    path: Annotated[
        Path,
        typer.Argument(
            help="CSV: from_level,from_code,to_level,to_code,relation[,area_share,population_share]"
        ),
    ],
    from_vintage: Annotated[str, typer.Option("--from", help="old vintage")],
    to_vintage: Annotated[str, typer.Option("--to", help="new vintage")],
    replace: bool = False,
) -> None:
    """Load an old→new crosswalk between two vintages."""
    from boundaries.crosswalk import load_crosswalk

    with _writing() as conn:
        try:
            summary = load_crosswalk(conn, path, from_vintage, to_vintage, replace)
        except GeoServiceError as exc:
            _fail(exc)
    for warning in summary.warnings:
        console.print(f"[yellow]warning[/yellow] {escape(str(warning))}", highlight=False)
    typer.echo(f"{summary.loaded} crosswalk rows loaded ({from_vintage} → {to_vintage})")


@app.command("demo")
def demo_cmd(
    serve: Annotated[bool, typer.Option(help="serve after loading")] = True,
    host: str | None = None,
    port: int | None = None,
    history: Annotated[
        bool,
        typer.Option(
            help="also the 2009 communes, the crosswalk 2009 → 2025 computed from geometry "
            "and the 2009 population carried onto the 2025 communes"
        ),
    ] = False,
) -> None:
    """Create the database, migrate, load the demo data once, render the map's first view
    into the tile cache, and serve."""
    import asyncio

    from geo_service.db import database_url
    from geo_service.demo import load_demo, load_history
    from geo_service.tiles.prerender import FIRST_VIEW_MAX_ZOOM, render_first_view

    with _writing() as conn:
        try:
            for line in load_demo(conn):
                typer.echo(line)
            for line in load_history(conn) if history else ():
                typer.echo(line)
        except GeoServiceError as exc:
            _fail(exc)
    # (before the service listens: the first map opened is drawn from the cache)
    settings = _settings()
    rendered = asyncio.run(render_first_view(settings, database_url(settings)))
    typer.echo(
        f"first map view: {rendered} tiles z0–z{FIRST_VIEW_MAX_ZOOM} rendered into the cache"
    )
    if serve:
        serve_cmd(host=host, port=port, workers=1)


@app.command("serve")
def serve_cmd(
    host: Annotated[str | None, typer.Option(help="default GEO_SERVICE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default GEO_SERVICE_PORT")] = None,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
) -> None:
    """Serve the web API (starts the embedded database if needed)."""
    import uvicorn

    settings = _settings()
    _connect().close()  # make sure the database runs and is migrated before workers start
    host = host or settings.host
    port = port or settings.port
    typer.echo(f"serving on http://{host}:{port}/  (API docs: http://{host}:{port}/api.html)")
    uvicorn.run(
        "geo_service.http.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        # the service writes its own JSON line per request (GEO_SERVICE_ACCESS_LOG)
        access_log=not settings.access_log,
        # bounded request heads, and refusals in the service's JSON (geo_service/http/server.py)
        http="geo_service.http.server:JsonErrorsProtocol",
        # forwarded headers are trusted only from GEO_SERVICE_TRUSTED_PROXIES, by the service
        # (uvicorn's own default trusts them from 127.0.0.1: anyone on this machine could
        # then pose as any address, past the failed-authentication limit)
        proxy_headers=False,
    )


indicators_app = typer.Typer(help="Statistical indicators.", no_args_is_help=True)
app.add_typer(indicators_app, name="indicators")


@load_app.command("catalogue")
def load_catalogue_cmd(
    path: Annotated[Path, typer.Argument(help="CSV with columns code,name_vi,name_en,kind,...")],
) -> None:
    """Add or update indicator catalogue entries (refused whole when a declared relation
    does not hold in the loaded values)."""
    from indicators.catalogue import load_catalogue_report

    with _writing() as conn:
        try:
            result = load_catalogue_report(conn, path)
        except GeoServiceError as exc:
            _fail(exc)
    _print_notes(result.warnings, "warning")
    typer.echo(f"{result.saved} indicators saved")


def _print_notes(notes: list[str], label: str = "note") -> None:
    for note in notes:
        console.print(f"[yellow]{label}[/yellow] {escape(note)}", highlight=False)


@load_app.command("indicators")
def load_indicators_cmd(
    path: Annotated[Path, typer.Argument(help="CSV or Excel file")],
    indicator: Annotated[str, typer.Option(help="indicator code (in the catalogue)")],
    vintage: Annotated[str, typer.Option(help="boundary vintage of the codes")],
    level: Annotated[str, typer.Option(help="level of the codes")],
    code_column: Annotated[str, typer.Option(help="column with the unit codes")],
    value_column: Annotated[str | None, typer.Option(help="long format: value column")] = None,
    period_column: Annotated[str | None, typer.Option(help="long format: period column")] = None,
    period: Annotated[str | None, typer.Option(help="one period for the whole file")] = None,
    wide: Annotated[bool, typer.Option(help="one column per period (e.g. 2019, 2020)")] = False,
    status_column: Annotated[str | None, typer.Option(help="column with a status")] = None,
    moe_column: Annotated[str | None, typer.Option(help="column with a margin of error")] = None,
    sheet: Annotated[str | None, typer.Option(help="Excel sheet name")] = None,
    na_values: Annotated[str, typer.Option(help="comma-separated 'not available' tokens")] = "",
    skip_unknown: Annotated[bool, typer.Option(help="skip (and list) unknown codes")] = False,
    replace: Annotated[bool, typer.Option(help="replace values of the same periods")] = False,
    encoding: Annotated[
        str | None,
        typer.Option(help="CSV text encoding when not UTF-8 (e.g. cp1258; UTF-16 is recognised)"),
    ] = None,
) -> None:
    """Load indicator values; every problem is reported and nothing is written unless all pass."""
    from indicators.store import store_values
    from indicators.values import ValueFormat, parse_values, read_table

    fmt = ValueFormat(
        code_column,
        period,
        period_column,
        value_column,
        wide,
        status_column,
        moe_column,
        tuple(t.strip() for t in na_values.split(",") if t.strip()),
        sheet,
    )
    with _writing() as conn:
        try:
            rows, problems = parse_values(read_table(path, sheet, encoding), fmt, str(path))
            if problems:
                raise GeoServiceError(
                    f"{len(problems)} problem(s), nothing was written:\n" + "\n".join(problems[:50])
                )
            result = store_values(
                conn,
                indicator,
                vintage,
                level,
                rows,
                skip_unknown=skip_unknown,
                replace=replace,
                what=str(path),
            )
        except GeoServiceError as exc:
            _fail(exc)
    for line in result.skipped:
        console.print(f"[yellow]{escape(line)}[/yellow]", highlight=False)
    _print_notes(result.notes)
    typer.echo(
        f"{result.loaded} values loaded ({result.not_available} not available, "
        f"{len(result.skipped)} skipped)"
    )


@indicators_app.command("list")
def indicators_list() -> None:
    """List the catalogue."""
    from indicators.sql import catalogue_lines

    with _connect() as conn:
        for code, kind, name in catalogue_lines(conn):
            typer.echo(f"{code}\t{kind}\t{name}")


@indicators_app.command("zonal")
def indicators_zonal(
    raster: Annotated[Path, typer.Argument(help="a raster file (GeoTIFF, ...)")],
    indicator: Annotated[str, typer.Option(help="indicator code (in the catalogue)")],
    vintage: Annotated[str, typer.Option()],
    level: Annotated[str, typer.Option()],
    period: Annotated[str, typer.Option(help="period the raster describes, e.g. 2020")],
    stat: Annotated[str, typer.Option(help="sum, mean, min, max, count, ...")] = "sum",
    replace: bool = False,
) -> None:
    """Store a zonal statistic of a raster over every unit (fractional pixel coverage)."""
    from indicators.zonal_store import store_zonal

    with _writing() as conn:
        try:
            result = store_zonal(conn, raster, indicator, vintage, level, stat, period, replace)
        except GeoServiceError as exc:
            _fail(exc)
    for note in result.notes:
        console.print(f"[yellow]note[/yellow] {escape(note)}", highlight=False)
    typer.echo(f"{result.loaded} values stored ({result.not_available} units without data)")


@indicators_app.command("carry-over")
def indicators_carry_over(
    indicator: Annotated[str, typer.Option(help="indicator code")],
    from_vintage: Annotated[str, typer.Option("--from", help="old vintage")],
    to_vintage: Annotated[str, typer.Option("--to", help="new vintage")],
    weight: Annotated[str, typer.Option(help="area or population")] = "area",
    level: Annotated[str, typer.Option(help="level of the old units")] = "province",
    replace: bool = False,
) -> None:
    """Re-express old units' values on new units through the crosswalk."""
    from indicators.store import carry_over

    with _writing() as conn:
        try:
            result = carry_over(conn, indicator, from_vintage, to_vintage, level, weight, replace)
        except GeoServiceError as exc:
            _fail(exc)
    for note in result.notes:
        console.print(f"[yellow]note[/yellow] {escape(note)}", highlight=False)
    typer.echo(f"{result.loaded} values derived ({result.not_available} not available)")


crosswalk_app = typer.Typer(help="Crosswalks between boundary vintages.", no_args_is_help=True)
app.add_typer(crosswalk_app, name="crosswalk")


@crosswalk_app.command("build")
def crosswalk_build_cmd(
    from_vintage: Annotated[str, typer.Option("--from", help="old vintage")],
    to_vintage: Annotated[str, typer.Option("--to", help="new vintage")],
    level: Annotated[str, typer.Option(help="level of both vintages (province, commune …)")],
    weights: Annotated[
        str, typer.Option(help="area, population or area,population")
    ] = "area,population",
    raster: Annotated[
        Path | None,
        typer.Option(help="population raster (default GEO_SERVICE_POPULATION_RASTER)"),
    ] = None,
    sliver: Annotated[
        float, typer.Option(help="drop pieces below this share of both their units")
    ] = 0.02,
    replace: Annotated[bool, typer.Option(help="replace the links of this level")] = False,
    compare: Annotated[
        bool,
        typer.Option(help="compare with the stored crosswalk instead of storing this one"),
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="CSV of every link, unit quality and sliver")
    ] = None,
) -> None:
    """Compute a crosswalk from the overlay of two vintages' coverages and store it (all
    links or none) with its quality figures and provenance."""
    from indicators.crosswalk_build import build_crosswalk, compare_with_stored, write_report

    if report is not None:
        _check_writable(report, "--report")
    chosen = [w.strip() for w in weights.split(",") if w.strip()]
    if "population" in chosen and raster is None:
        raster = _settings().population_raster
    with _writing() as conn:
        try:
            build = build_crosswalk(
                conn,
                from_vintage,
                to_vintage,
                level,
                weights=chosen,
                raster=raster if "population" in chosen else None,
                sliver=sliver,
                replace=replace,
                store=not compare,
            )
            agreement = (
                compare_with_stored(conn, build, from_vintage, to_vintage, level)
                if compare
                else None
            )
        except GeoServiceError as exc:
            _fail(exc)
    if report is not None:
        write_report(build, report)
    for note in build.notes:
        console.print(f"[yellow]note[/yellow] {escape(note)}", highlight=False)
    f = build.figures
    typer.echo(
        f"{f['links']} links ({f['whole']} whole) from {f['pieces']} pieces, "
        f"{f['slivers']} slivers dropped ({f['sliver_area_km2']:,.1f} km²) in "
        f"{build.seconds:.1f} s; weights {', '.join(build.weights)}"
    )
    for side, name in (("from", from_vintage), ("to", to_vintage)):
        typer.echo(
            f"{name}: {f[f'{side}_units']} units, share covered by the other vintage: "
            f"min {f[f'{side}_covered_min']:.3f}, median {f[f'{side}_covered_median']:.4f}, "
            f"{f[f'{side}_below_95']} below 0.95, {f[f'{side}_uncovered']} not at all"
        )
    if agreement is not None:
        for key, value in agreement.summary().items():
            typer.echo(f"{key}: {value if not isinstance(value, float) else f'{value:.4f}'}")
        for what, items in (
            ("whole links not whole here", agreement.whole_disagreeing),
            ("only computed", agreement.only_computed),
            ("only stored", agreement.only_stored),
        ):
            if items:
                typer.echo(f"{what}: {', '.join(items[:20])}")
    elif not compare:
        typer.echo(f"stored: crosswalk {from_vintage} → {to_vintage} at {level} level")


disclosure_app = typer.Typer(help="Disclosure control of published values.", no_args_is_help=True)
app.add_typer(disclosure_app, name="disclosure")


@disclosure_app.command("audit")
def disclosure_audit(
    indicator: Annotated[
        list[str] | None, typer.Option(help="audit these indicators' series (default: all)")
    ] = None,
    details: Annotated[bool, typer.Option(help="list every cell below its protection")] = False,
) -> None:
    """For each series: hidden cells, the narrowest interval an attacker can deduce, and any
    cell below its protection range (exit code 1 when there is one)."""
    from indicators.protect import audit

    with _connect() as conn:
        try:
            report = audit(conn, indicator or None)
        except GeoServiceError as exc:
            _fail(exc)
    failing = 0
    typer.echo("indicator\tseries\tcells\thidden\tprimary\tnarrowest interval\tbelow protection")
    for series in report:
        narrowest = "-"
        if series.narrowest:
            n = series.narrowest
            narrowest = (
                f"{n['code']} {n['period']}: {n['value']:g} in {n['lower']:g}–{n['upper']:g}"
                f" (needs {n['required_lower']:g}–{n['required_upper']:g})"
            )
        typer.echo(
            f"{series.indicator}\t{series.level}-{series.vintage}\t{series.cells}\t"
            f"{series.hidden}\t{series.primary}\t{narrowest}\t{len(series.below)}"
        )
        failing += len(series.below)
        if details:
            for line in series.below:
                typer.echo(f"  {line}")
    if failing:
        console.print(f"[red]{failing} hidden cell(s) below their protection range[/red]")
        raise typer.Exit(1)
    console.print("every hidden cell meets its protection range")


@disclosure_app.command("protect")
def disclosure_protect(
    everything: Annotated[
        bool, typer.Option("--all", help="every indicator, not only those pending")
    ] = False,
) -> None:
    """Protect the indicators withheld since a write (a running service does it by itself)."""
    from indicators.protect import refresh

    with _connect() as conn:
        reports = refresh(conn, everything=everything)
    for group in reports:
        typer.echo(
            f"{', '.join(group.indicators)}: {group.cells} cells, {group.hidden} hidden "
            f"({group.primary} by their rule)"
        )
        _print_notes(group.failing, "below protection")
    if not reports:
        typer.echo("nothing pending")


tiles_app = typer.Typer(help="The vector tile cache.", no_args_is_help=True)
app.add_typer(tiles_app, name="tiles")


def _bbox_option(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    from geo_service.features.query import parse_bbox

    try:
        return parse_bbox(text)
    except GeoServiceError as exc:
        _fail(exc)
        raise


@tiles_app.command("seed")
def tiles_seed(
    collection: Annotated[str, typer.Option(help="collection id, e.g. commune-2025")],
    zooms: Annotated[str, typer.Option(help="zoom range, e.g. 0-10")] = "0-8",
    bbox: Annotated[str | None, typer.Option(help="west,south,east,north")] = None,
    indicator: Annotated[str | None, typer.Option(help="indicator code(s)")] = None,
    period: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Render and cache every tile of the zooms over the collection (or bbox)."""
    import asyncio

    from geo_service.db import database_url
    from geo_service.tiles.seed import parse_zooms, seed

    try:
        zoom_range = parse_zooms(zooms)
    except ValueError as exc:
        console.print(f"[red]error:[/red] --zooms: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    _connect().close()
    with _progress_bar() as bar:
        task = bar.add_task("seed", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            summary = asyncio.run(
                seed(
                    _settings(),
                    database_url(_settings()),
                    collection,
                    zoom_range,
                    _bbox_option(bbox),
                    indicator,
                    period,
                    progress,
                )
            )
        except GeoServiceError as exc:
            _fail(exc)
    typer.echo(f"{summary.tiles} tiles, {summary.bytes / 1e6:.1f} MB, {summary.seconds:.1f} s")
    if summary.cache_errors:
        _fail(
            GeoServiceError(
                f"the tile cache ({_settings().tile_cache}) failed "
                f"{summary.cache_errors} time(s): the tiles were rendered but "
                "not all stored (is it reachable?)"
            )
        )


@tiles_app.command("purge")
def tiles_purge(
    collection: Annotated[str, typer.Option(help="collection id, e.g. commune-2025")],
    bbox: Annotated[str | None, typer.Option(help="west,south,east,north")] = None,
) -> None:
    """Drop cached tiles of a collection (within bbox, or all)."""
    from geo_service.tiles.seed import purge_tiles

    dropped, errors = purge_tiles(_settings(), collection, _bbox_option(bbox))
    typer.echo(f"{dropped} tiles purged")
    if errors:
        _fail(
            GeoServiceError(
                f"the tile cache ({_settings().tile_cache}) failed {errors} "
                "time(s): the purge is not complete (is it reachable?)"
            )
        )


@tiles_app.command("stats")
def tiles_stats() -> None:
    """Show what the tile cache holds, and how far the service's pre-render has got."""
    from geo_service.tiles.prerender import read_status
    from geo_service.tiles.service import make_caches

    settings = _settings()
    for cache in make_caches(settings):
        for key, value in cache.stats().items():
            typer.echo(f"{key}\t{value}")
        cache.close()
    status = read_status(settings.home)
    if status is None:
        typer.echo("prerender\tnot run (it runs in `geo-service serve`)")
        return
    for key in ("state", "rendered", "remaining", "errors", "last_error"):
        typer.echo(f"prerender_{key}\t{status.get(key, '')}")
    updated = float(str(status.get("updated") or 0))
    typer.echo(f"prerender_updated\t{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(updated))}")


@tiles_app.command("nginx-conf")
def tiles_nginx_conf(
    listen: Annotated[str, typer.Option(help="PORT or ADDRESS:PORT nginx listens on")] = "8080",
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            help="the service, http://HOST:PORT (default GEO_SERVICE_HOST and _PORT); "
            "repeat it for several instances sharing the cache"
        ),
    ] = None,
    standalone: Annotated[
        bool,
        typer.Option(
            help="a whole nginx.conf (nginx -p DIR -c FILE) instead of a block to include"
        ),
    ] = False,
    workers: Annotated[str, typer.Option(help="standalone: worker processes")] = "auto",
    brotli: Annotated[
        bool | None,
        typer.Option(
            "--brotli/--no-brotli", help="brotli_static (default: if its module is installed)"
        ),
    ] = None,
) -> None:
    """Print an nginx configuration serving the directory tile cache and proxying the rest."""
    from geo_service.tiles.nginx import nginx_conf

    try:
        typer.echo(nginx_conf(_settings(), listen, upstream, standalone, workers, brotli), nl=False)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc


users_app = typer.Typer(help="Users, roles and tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="user name")],
    role: Annotated[str, typer.Option(help="viewer, editor, supervisor or admin")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help="province (2-digit) or commune (5-digit) codes; repeat or comma-separate"
        ),
    ] = None,
) -> None:
    """Create a user and print its token once (only a hash is stored)."""
    from geo_service.users import add_user

    codes = [c.strip() for item in scope or [] for c in item.split(",") if c.strip()]
    with _connect() as conn:
        try:
            token = add_user(conn, name, role, codes)
        except GeoServiceError as exc:
            _fail(exc)
    console.print(
        f"user {name} ({role}, scope {', '.join(codes) or 'all'}) created; "
        "its token (shown only now):"
    )
    typer.echo(token)


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument(help="user name")],
) -> None:
    """Set or reset a user's password (asked twice, never echoed); their tokens keep
    working unless revoked (`users revoke`)."""
    from geo_service.users import set_password

    password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    with _connect() as conn:
        try:
            set_password(conn, name, password)
        except GeoServiceError as exc:
            _fail(exc)
    typer.echo(f"password of {name} set")


@users_app.command("revoke")
def users_revoke(name: Annotated[str, typer.Argument(help="user name")]) -> None:
    """Revoke every token of a user (a lost tablet, a leaver)."""
    from geo_service.users import revoke_tokens_of

    with _connect() as conn:
        count = revoke_tokens_of(conn, name, "command line")
    typer.echo(f"{count} token(s) of {name} revoked")


@users_app.command("list")
def users_list() -> None:
    """List users (never their tokens)."""
    from geo_service.users import list_users

    with _connect() as conn:
        for name, role, scope, disabled in list_users(conn):
            typer.echo(f"{name}\t{role}\t{','.join(scope)}\t{'disabled' if disabled else ''}")


ea_app = typer.Typer(help="Enumeration areas.", no_args_is_help=True)
app.add_typer(ea_app, name="ea")


@ea_app.command("generate")
def ea_generate(
    vintage: Annotated[str, typer.Option(help="boundary vintage of the communes")] = "2025",
    census_round: Annotated[str, typer.Option("--round", help="census round, e.g. 2029")] = "2029",
    commune: Annotated[list[str] | None, typer.Option(help="commune code(s); default all")] = None,
    households_per_ea: Annotated[float, typer.Option(help="target workload")] = 120,
    replace: Annotated[bool, typer.Option(help="replace the communes' existing EAs")] = False,
    shown: Annotated[int, typer.Option(help="communes to list with their line share")] = 20,
) -> None:
    """Draft a gap-free EA coverage of each commune from the population raster, along the
    loaded lines where they cross it (`load lines`)."""
    from geo_service.ea.generate import generate

    settings = _settings()
    codes = [c.strip() for item in commune or [] for c in item.split(",") if c.strip()] or None
    with _connect() as conn, _progress_bar() as bar:
        task = bar.add_task("communes", total=None)
        try:
            summary = generate(
                conn,
                vintage,
                census_round,
                codes,
                settings.population_raster,
                households_per_ea,
                settings.household_size,
                replace,
                lambda done, total: bar.update(task, completed=done, total=total),
            )
        except GeoServiceError as exc:
            _fail(exc)
    typer.echo(
        f"{summary.eas} draft EAs in {summary.communes} communes "
        f"({summary.skipped} skipped: they already have EAs) in {summary.seconds:.1f} s"
    )
    if summary.with_lines:
        share = summary.along_lines_share or 0.0
        typer.echo(
            f"{summary.with_lines} communes are crossed by loaded lines: {share:.1%} of their "
            f"EA boundaries ({summary.along_lines_m / 1000:,.1f} of "
            f"{summary.boundary_m / 1000:,.1f} km) follow a line"
        )
        for code, value in sorted(summary.shares.items())[:shown]:
            typer.echo(f"  {code}\t{value:.1%}")
        if len(summary.shares) > shown:
            typer.echo(f"  … and {len(summary.shares) - shown} more (GET /communes/CODE/ea-lines)")


def main() -> None:
    """The `geo-service` command: a database that does not answer is a message, not a
    traceback."""
    os.umask(PRIVATE_UMASK)  # (files the commands make: the user's and group's only)
    try:
        app()
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()
        console.print(
            f"[red]error:[/red] the database does not answer: "
            f"{escape(reason[0] if reason else type(exc).__name__)}\n"
            "Is it running? `geo-service db status` tells for the embedded one; "
            "otherwise check DATABASE_URL / PGHOST.",
            highlight=False,
        )
        sys.exit(2)
