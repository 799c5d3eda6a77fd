"""Reading the Aperture warehouse from Python: pandas, polars, duckdb, pyarrow and DataFusion.

The warehouse is Hive-partitioned Parquet, ``<root>/<table>/dt=YYYY-MM-DD/*.parquet``, and ``dt``
is stored inside every file as a date as well as in the folder name. Readers that infer the
partition from the folder name see a string, which clashes with the date in the file:

* ``pd.read_parquet(root / "likes")`` and ``pq.read_table`` fail with "Unable to merge: Field dt
  has incompatible types: date32[day] vs dictionary<values=string ...>" (pyarrow infers a
  dictionary-encoded string for every folder key). Declaring ``dt`` a date, as :func:`dataset`
  does, reads it as one; pandas then gets it as ``date32[pyarrow]``, not ``category``.
* polars (``pl.scan_parquet(root / "likes")``) and duckdb (``read_parquet('…/*/*.parquet')``)
  take ``dt`` from the files: a ``Date`` / ``DATE`` with no help.

Everything here reads the root named by ``APERTURE_WAREHOUSE`` (default: the demo's
``.aperture/warehouse`` at the repository's top). :func:`duckdb_connection` registers every table
and every rollup of ``warehouse/sql/`` (the SQL that ``aperture sql`` serves, run by duckdb);
:func:`datafusion` asks the ``aperture`` binary itself (``APERTURE_BIN``).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("APERTURE_WAREHOUSE", REPO / ".aperture" / "warehouse"))
SQL_DIR = REPO / "warehouse" / "sql"

#: Every table, in the data dictionary's order.
TABLES = (
    "users",
    "follows",
    "posts",
    "stories",
    "likes",
    "comments",
    "shares",
    "saves",
    "views",
    "negative_feedback",
)

#: The partition key: a date, in the folder name and in every file.
PARTITIONING = ds.partitioning(pa.schema([("dt", pa.date32())]), flavor="hive")


def tables(root: Path = ROOT) -> list[str]:
    """The tables that hold at least one file under ``root``."""
    return [t for t in TABLES if any((root / t).glob("dt=*/*.parquet"))]


def dataset(table: str, root: Path = ROOT) -> ds.Dataset:
    """A pyarrow dataset of one table, ``dt`` a date (folders named ``.x`` or ``_x`` skipped)."""
    return ds.dataset(root / table, format="parquet", partitioning=PARTITIONING)


def arrow(table: str, columns=None, filter=None, root: Path = ROOT) -> pa.Table:
    """One table as an Arrow table; ``filter`` (a ``pyarrow.compute`` expression) on ``dt``
    reads only the matching folders."""
    return dataset(table, root).to_table(columns=columns, filter=filter)


def _pandas_type(t: pa.DataType):
    # Dates stay dates (pandas has no numpy date dtype), and nullable ids and flags stay
    # integers and booleans instead of turning into float64 or object where a null appears.
    if pa.types.is_date32(t):
        return pd.ArrowDtype(t)
    if pa.types.is_int64(t):
        return pd.Int64Dtype()
    if pa.types.is_boolean(t):
        return pd.BooleanDtype()
    return None


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas, with the warehouse's dtypes kept: ``dt`` as
    ``date32[pyarrow]``, ids as ``Int64``, enumerations as ``category``, times as
    ``datetime64[ms, UTC]``, flags as ``boolean``."""
    return table.to_pandas(types_mapper=_pandas_type)


def pandas(table: str, columns=None, filter=None, root: Path = ROOT) -> pd.DataFrame:
    """One table as a pandas DataFrame (see :func:`to_pandas` for its dtypes)."""
    return to_pandas(arrow(table, columns, filter, root))


def polars(table: str, root: Path = ROOT) -> pl.LazyFrame:
    """One table as a polars LazyFrame; a filter on ``dt`` prunes folders."""
    return pl.scan_parquet(root / table / "**" / "*.parquet", hive_partitioning=True)


def duckdb_connection(root: Path = ROOT) -> duckdb.DuckDBPyConnection:
    """An in-memory duckdb with a view per table and the project's rollups."""
    con = duckdb.connect()
    # Times come back in UTC whatever the machine's zone, as the warehouse stores them.
    con.execute("SET TimeZone = 'UTC'")
    for table in tables(root):
        glob = (root / table / "*" / "*.parquet").as_posix()
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{glob}')")
    for sql in sorted(SQL_DIR.glob("*.sql")):
        con.execute(sql.read_text())
    return con


def aperture_bin() -> str:
    """The ``aperture`` binary: ``APERTURE_BIN``, else the repository's debug build."""
    return os.environ.get("APERTURE_BIN", str(REPO / "target" / "debug" / "aperture"))


def datafusion(query: str, root: Path = ROOT) -> pa.Table:
    """Runs ``query`` with ``aperture sql`` (DataFusion, the project's catalog and rollups) and
    returns its result, types and all, through a Parquet file."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.parquet"
        env = dict(os.environ, APERTURE__WAREHOUSE__ROOT=str(root), RUST_LOG="warn")
        done = subprocess.run(
            [aperture_bin(), "sql", "--format", "parquet", "--output", str(out), query],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"aperture sql failed: {done.stderr.strip()}")
        return pq.read_table(out)
