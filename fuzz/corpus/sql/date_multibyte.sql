SELECT t.name, count(*) AS n FROM lite.main.t WHERE day < DATE '1995-03-1😀5' OR day > DATE 'é BC' GROUP BY t.name
