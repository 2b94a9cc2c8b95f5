-- Source `pg` of tests/tests/slt.rs (database `slt`, schema `public`).
CREATE TABLE items (
    id int PRIMARY KEY,
    name text,
    qty int,
    price numeric(10,2),
    weight double precision,
    day date,
    tag varchar(10)
);
INSERT INTO items VALUES
    (1, 'apple', 3, 1.50, 0.25, '2024-01-05', 'a'),
    (2, 'Apple', NULL, 2.25, NULL, '2024-02-10', 'b'),
    (3, 'banana', 7, 0.99, 1.5, NULL, 'a'),
    (4, NULL, 0, NULL, 3.25, '2023-12-31', NULL),
    (5, 'cherry ', -2, 10.00, -0.5, '2024-01-05', 'c'),
    (6, 'it''s -- ; \ é', 5, 3.33, 2.0, '2024-03-01', 'b'),
    (7, 'date', 2147483647, 99999999.99, 1e300, '1970-01-01', 'A');
CREATE TABLE orders (
    oid int PRIMARY KEY,
    item_id int,
    amount numeric(12,2),
    note text
);
INSERT INTO orders VALUES
    (10, 1, 5.00, 'x'),
    (11, 1, 7.50, NULL),
    (12, 3, 1.25, 'y'),
    (13, 9, 4.00, 'z'),
    (14, NULL, 2.00, 'w'),
    (15, 5, 100.10, 'x'),
    (16, 7, 0.01, '');
CREATE TABLE "we'ird ""tab""" ("col; --x" int, "é" text);
INSERT INTO "we'ird ""tab""" VALUES (1, 'one'), (2, 'two; DROP TABLE items; --');
-- Types PostgreSQL compares otherwise than their text (padding, case).
CREATE TABLE kinds (id int PRIMARY KEY, c char(5), u uuid, j jsonb);
INSERT INTO kinds VALUES
    (1, 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1, "b": 2}'),
    (2, 'ab  x', 'B0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12', '[1, 2]'),
    (3, NULL, NULL, NULL);
-- char(n) against text with and without trailing spaces.
CREATE TABLE codes (id int PRIMARY KEY, code char(4), label text);
INSERT INTO codes VALUES (1, 'ab', 'ab'), (2, 'ab', 'ab  '), (3, 'x', 'x '), (4, NULL, NULL), (5, 'x  y', 'x  y');
-- Dates, timestamps with and without a time zone, booleans.
CREATE TABLE events (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz, flag boolean, n int);
INSERT INTO events VALUES
    (1, '2024-02-28', '2024-02-28 23:30:00', '2024-02-28 23:30:00+00', true, 7),
    (2, '2024-03-01', '2024-03-01 00:15:00.5', '2024-03-01 01:15:00+01', false, -7),
    (3, NULL, NULL, NULL, NULL, NULL),
    (4, '1999-12-31', '1999-12-31 23:59:59', '2000-01-01 00:59:59+01', true, 0);
