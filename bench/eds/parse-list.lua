-- The same 20-item list against Parse Server: where done = false, order by n descending.
wrk.headers["X-Parse-Application-Id"] = "bench"
wrk.path = '/parse/classes/Bench?limit=20&where=%7B%22done%22%3Afalse%7D&order=-n'
