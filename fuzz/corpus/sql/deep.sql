SELECT id FROM t WHERE id <> 1 AND id <> 2 AND id <> 3 AND (id = 4 OR id = 5 OR id + 1 + 2 + 3 = 9) AND name || 'a' || 'b' = 'ab' AND amount = 1e300 AND amount <> 'NaN'
