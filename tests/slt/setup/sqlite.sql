-- Source `lite` of tests/tests/slt.rs (schema `main`).
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT,
    qty INTEGER,
    price DECIMAL(10,2),
    weight DOUBLE,
    day DATE,
    tag TEXT
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
    oid INTEGER PRIMARY KEY,
    item_id INTEGER,
    amount DECIMAL(12,2),
    note TEXT
);
INSERT INTO orders VALUES
    (10, 1, 5.00, 'x'),
    (11, 1, 7.50, NULL),
    (12, 3, 1.25, 'y'),
    (13, 9, 4.00, 'z'),
    (14, NULL, 2.00, 'w'),
    (15, 5, 100.10, 'x'),
    (16, 7, 0.01, '');
CREATE TABLE `we'ird "tab"` (`col; --x` INTEGER, `é` TEXT);
INSERT INTO `we'ird "tab"` VALUES (1, 'one'), (2, 'two; DROP TABLE items; --');
-- Columns SQLite compares otherwise than the values Spar reads: no declared
-- type (each value keeps its storage class), NOCASE and RTRIM collations,
-- DATETIME text with a `T` or a space, a BLOB column holding text.
CREATE TABLE loose (
    id INTEGER PRIMARY KEY,
    v,
    w TEXT COLLATE NOCASE,
    r TEXT COLLATE RTRIM,
    x DATETIME,
    b BLOB
);
INSERT INTO loose VALUES
    (1, 10, 'Ab', 'x', '2024-01-01 10:00:00', x'61'),
    (2, '10', 'ab', 'x  ', '2024-01-01T09:00:00', 'a'),
    (3, 9, 'AB ', 'y', '2024-01-01 09:30:00', x'62');
-- Dates, DATETIME text (a `T` or a space), booleans.
CREATE TABLE events (id INTEGER PRIMARY KEY, d DATE, ts DATETIME, flag BOOLEAN, n INTEGER);
INSERT INTO events VALUES
    (1, '2024-02-28', '2024-02-28 23:30:00', 1, 7),
    (2, '2024-03-01', '2024-03-01T00:15:00.5', 0, -7),
    (3, NULL, NULL, NULL, NULL),
    (4, '1999-12-31', '1999-12-31 23:59:59', 1, 0);
-- Time values in every form SQLite's date and time functions read: a date
-- alone, no seconds, fractions, a `T`, `Z` and offsets, 24:00, a day past
-- the month's end, a Julian day number (text, INTEGER and REAL) and a unix
-- time.
CREATE TABLE times (id INTEGER PRIMARY KEY, ts TIMESTAMP, d DATE);
INSERT INTO times VALUES
    (1, '2024-02-29', '2024-02-29'),
    (2, '2024-02-29 13:45', '2024-02-29 13:45'),
    (3, '2024-02-29T13:45:07.25Z', '2024-02-29T13:45:07.25Z'),
    (4, '2024-02-29 23:30 -02:00', '2024-02-29 23:30 -02:00'),
    (5, '2024-12-31 24:00', '2024-12-31 24:00'),
    (6, '2023-02-31 08:00:00.123456', '2023-02-31'),
    (7, 2460000.5, 2460000.5),
    (8, '2460000.25', 2460000),
    (9, 1700000000, 1700000000),
    (10, '12:30', '12:30'),
    (11, NULL, NULL);

