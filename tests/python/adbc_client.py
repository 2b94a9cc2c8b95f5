"""A real third-party client against `spar serve`: the ADBC Flight SQL driver.

Usage: adbc_client.py URI USER PASSWORD

Connects with user and password, runs a cross-source query, a prepared
statement with a parameter, and adbc_get_objects, reading every result as
Arrow; tries a wrong password. Prints one JSON object with what it read
(the Rust test that starts the server compares it with the embedded
engine's answers) and exits non-zero on any unexpected error.
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pyarrow

CROSS_SOURCE = (
    "SELECT c.name, count(*) AS n, sum(o.amount) AS total "
    "FROM orders o JOIN customers c ON c.id = o.customer "
    "GROUP BY c.name ORDER BY c.name"
)
PREPARED = "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer WHERE o.amount > $1 ORDER BY o.id"


def connect(uri, user, password):
    return flight_sql.connect(uri, db_kwargs={"username": user, "password": password})


def main():
    uri, user, password = sys.argv[1:4]
    out = {}

    try:
        with connect(uri, user, password + "-wrong") as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
        out["wrong_password"] = "accepted"
    except adbc_driver_manager.Error as e:
        out["wrong_password"] = str(e)

    with connect(uri, user, password) as conn:
        with conn.cursor() as cur:
            cur.execute(CROSS_SOURCE)
            table = cur.fetch_arrow_table()
            assert isinstance(table, pyarrow.Table), type(table)
            out["cross_source_columns"] = table.column_names
            out["cross_source"] = [list(r.values()) for r in table.to_pylist()]

            cur.execute(PREPARED, parameters=(450,))
            out["prepared"] = [list(r.values()) for r in cur.fetch_arrow_table().to_pylist()]
            cur.execute(PREPARED, parameters=(480,))
            out["prepared_again"] = [list(r.values()) for r in cur.fetch_arrow_table().to_pylist()]

        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        listed = {}
        for catalog in objects:
            for schema in catalog["catalog_db_schemas"] or []:
                for t in schema["db_schema_tables"] or []:
                    name = f'{catalog["catalog_name"]}.{schema["db_schema_name"]}.{t["table_name"]}'
                    listed[name] = [c["column_name"] for c in t["table_columns"] or []]
        out["objects"] = listed

    print(json.dumps(out))


if __name__ == "__main__":
    main()
