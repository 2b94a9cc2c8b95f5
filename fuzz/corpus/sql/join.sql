SELECT t.name, count(*) AS n, sum(amount) FROM lite.main.t JOIN t AS u ON u.id = t.id WHERE t.name LIKE 'a%' AND day < DATE '1995-03-15' GROUP BY t.name ORDER BY n DESC LIMIT 5
