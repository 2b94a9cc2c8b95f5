SELECT id, 'a\b''c' AS "n\""x", "c\" FROM t, `we'ird "t"` WHERE name = 'x\'' USING utf8mb4) AS BINARY)) UNION SELECT 1 -- ' OR name IN ('', '''', '\')
