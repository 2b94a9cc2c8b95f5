-- Source `my` of tests/tests/slt.rs (database `slt`). Default collation:
-- case- and trailing-space-insensitive. Backslashes are doubled (the
-- server's default sql_mode reads them as escapes).
CREATE TABLE items (
    id INT PRIMARY KEY,
    name VARCHAR(50),
    qty INT,
    price DECIMAL(10,2),
    weight DOUBLE,
    day DATE,
    tag VARCHAR(10)
);
INSERT INTO items VALUES
    (1, 'apple', 3, 1.50, 0.25, '2024-01-05', 'a'),
    (2, 'Apple', NULL, 2.25, NULL, '2024-02-10', 'b'),
    (3, 'banana', 7, 0.99, 1.5, NULL, 'a'),
    (4, NULL, 0, NULL, 3.25, '2023-12-31', NULL),
    (5, 'cherry ', -2, 10.00, -0.5, '2024-01-05', 'c'),
    (6, 'it''s -- ; \\ é', 5, 3.33, 2.0, '2024-03-01', 'b'),
    (7, 'date', 2147483647, 99999999.99, 1e300, '1970-01-01', 'A');
CREATE TABLE orders (
    oid INT PRIMARY KEY,
    item_id INT,
    amount DECIMAL(12,2),
    note VARCHAR(20)
);
INSERT INTO orders VALUES
    (10, 1, 5.00, 'x'),
    (11, 1, 7.50, NULL),
    (12, 3, 1.25, 'y'),
    (13, 9, 4.00, 'z'),
    (14, NULL, 2.00, 'w'),
    (15, 5, 100.10, 'x'),
    (16, 7, 0.01, '');
CREATE TABLE `we'ird ``tab``` (`col; --x` INT, `é` VARCHAR(40));
INSERT INTO `we'ird ``tab``` VALUES (1, 'one'), (2, 'two; DROP TABLE items; --');
-- Strings that MySQL's collations compare unlike DataFusion: case, trailing
-- spaces, CHAR padding, another character set, an ENUM (ordered by its
-- position), non-ASCII and LIKE's special characters.
CREATE TABLE words (
    id INT PRIMARY KEY,
    w VARCHAR(20),
    c CHAR(5),
    l VARCHAR(20) CHARACTER SET latin1,
    e ENUM('zeta', 'alpha'),
    t TEXT
) DEFAULT CHARSET = utf8mb4;
INSERT INTO words VALUES
    (1, 'a', 'a', 'é', 'alpha', 'x'),
    (2, 'A', 'a  ', 'e', 'zeta', 'X '),
    (3, 'a ', 'ab', 'É', 'alpha', 'x%y'),
    (4, 'é', 'é', NULL, NULL, NULL),
    (5, 'b\\c', 'x', 'x', 'zeta', 'a_b'),
    (6, 'z', 'Z', 'z', 'alpha', 'a\\_b');
-- Dates, DATETIME, TIMESTAMP (instants given as Unix times, whatever the
-- session's time zone), and BOOLEAN (TINYINT(1)).
CREATE TABLE events (id INT PRIMARY KEY, d DATE, ts DATETIME(6), tz TIMESTAMP(6) NULL, flag BOOLEAN, n INT);
INSERT INTO events VALUES
    (1, '2024-02-28', '2024-02-28 23:30:00', FROM_UNIXTIME(1709163000), TRUE, 7),
    (2, '2024-03-01', '2024-03-01 00:15:00.5', FROM_UNIXTIME(1709252100), FALSE, -7),
    (3, NULL, NULL, NULL, NULL, NULL),
    (4, '1999-12-31', '1999-12-31 23:59:59', FROM_UNIXTIME(946684799), TRUE, 0);
