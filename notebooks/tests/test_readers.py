"""The same Parquet, read by pandas, polars, duckdb, pyarrow and DataFusion (`aperture sql`),
gives the same rows and the same types: per table, the row count, the rows per day, the
columns, each column's type up to the engines' own spelling of it, and ``dt`` a date in all of
them (never a string or a ``category``)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import aperture_warehouse as wh


def utc(tz: str | None) -> str | None:
    """One spelling of UTC: duckdb says ``Etc/UTC``, DataFusion ``+00:00`` or ``UTC``."""
    return "UTC" if tz in ("UTC", "Etc/UTC", "+00:00", "Z") else tz


def canonical(t: pa.DataType) -> str:
    """An Arrow type without the choices engines make differently for the same values:
    string layouts (large, view), dictionary encoding of an enumeration, list layouts, and a
    timestamp's unit (duckdb's TIMESTAMPTZ is µs, the files hold ms; values are compared
    separately)."""
    if pa.types.is_dictionary(t):
        return canonical(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return f"list<{canonical(t.value_type)}>"
    if pa.types.is_timestamp(t):
        return f"timestamp[{utc(t.tz)}]"
    if pa.types.is_date32(t):
        return "date"
    return str(t)


def canonical_pandas(series: pd.Series) -> str:
    """The same, for a pandas column as :func:`aperture_warehouse.to_pandas` gives it."""
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        return canonical(dtype.pyarrow_dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        return "string"
    if isinstance(dtype, pd.Int64Dtype):
        return "int64"
    if isinstance(dtype, pd.BooleanDtype):
        return "bool"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return f"timestamp[{utc(str(dtype.tz))}]"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "string"
    if pd.api.types.is_float_dtype(dtype):
        return canonical(pa.from_numpy_dtype(dtype))
    if pd.api.types.is_object_dtype(dtype):
        values = series.dropna()
        first = values.iloc[0] if len(values) else None
        if first is not None and hasattr(first, "__len__") and not isinstance(first, str):
            return "list<string>"
        return "object"
    return str(dtype)


@pytest.fixture(scope="module")
def con():
    return wh.duckdb_connection()


@pytest.fixture(scope="module", params=wh.tables())
def table(request):
    return request.param


def per_day(counts) -> dict[dt.date, int]:
    return {day: int(n) for day, n in counts}


def test_every_table_of_the_dictionary_is_in_the_warehouse():
    assert wh.tables() == list(wh.TABLES)


def test_every_reader_sees_the_same_rows_and_types(table, con):
    reference = wh.arrow(table)
    expected_types = {f.name: canonical(f.type) for f in reference.schema}
    assert expected_types["dt"] == "date"
    n = reference.num_rows
    assert n > 0
    grouped = reference.group_by("dt").aggregate([("dt", "count")])
    days = per_day(zip(grouped["dt"].to_pylist(), grouped["dt_count"].to_pylist()))

    # pandas
    frame = wh.pandas(table)
    assert len(frame) == n
    assert {c: canonical_pandas(frame[c]) for c in frame.columns} == expected_types
    assert not isinstance(frame["dt"].dtype, pd.CategoricalDtype)
    assert per_day(frame.groupby("dt", observed=True).size().items()) == days

    # polars
    lazy = wh.polars(table)
    pl_table = lazy.collect().to_arrow()
    assert pl_table.num_rows == n
    assert {f.name: canonical(f.type) for f in pl_table.schema} == expected_types
    assert per_day(lazy.group_by("dt").len().collect().rows()) == days

    # duckdb
    dd_table = con.sql(f"SELECT * FROM {table}").to_arrow_table()
    assert dd_table.num_rows == n
    assert {f.name: canonical(f.type) for f in dd_table.schema} == expected_types
    assert per_day(con.sql(f"SELECT dt, count(*) FROM {table} GROUP BY dt").fetchall()) == days

    # DataFusion, through `aperture sql`
    df_table = wh.datafusion(f"SELECT * FROM {table}")
    assert df_table.num_rows == n
    assert {f.name: canonical(f.type) for f in df_table.schema} == expected_types
    df_days = wh.datafusion(f"SELECT dt, count(*) AS n FROM {table} GROUP BY dt")
    assert per_day(zip(df_days["dt"].to_pylist(), df_days["n"].to_pylist())) == days

    # And the same values: event ids, and the span of event times, in every reader.
    ids = set(reference["event_id"].to_pylist())
    assert len(ids) == n, "an event id appears twice"
    for other in (pl_table, dd_table, df_table):
        assert set(other["event_id"].to_pylist()) == ids
        assert pc.min(other["ts"]).as_py() == pc.min(reference["ts"]).as_py()
        assert pc.max(other["ts"]).as_py() == pc.max(reference["ts"]).as_py()


def test_polars_and_duckdb_read_dt_as_a_date_with_no_hint(table):
    assert pl.scan_parquet(wh.ROOT / table).collect_schema()["dt"] == pl.Date
    glob = (wh.ROOT / table / "*" / "*.parquet").as_posix()
    described = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{glob}')").fetchall()
    types = {name: kind for name, kind, *_ in described}
    assert types["dt"] == "DATE"


def test_a_filter_on_dt_reads_only_that_day(table):
    reference = wh.arrow(table)
    first = pc.min(reference["dt"]).as_py()
    day = wh.arrow(table, filter=pc.field("dt") == first)
    assert day.num_rows == pc.sum(pc.equal(reference["dt"], first)).as_py()
    # Pruned by folder: the dataset lists only that day's files.
    files = wh.dataset(table).get_fragments(filter=pc.field("dt") == first)
    assert all(f"dt={first.isoformat()}" in f.path for f in files)
