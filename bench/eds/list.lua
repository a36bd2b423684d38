-- A 20-item list with a filter and a sort, ACL-filtered as an anonymous caller.
wrk.headers["Enginio-Backend-Id"] = os.getenv("BACKEND")
wrk.path = '/v1/objects/bench?limit=20&q=%7B%22done%22%3Afalse%7D&sort=%5B%7B%22sortBy%22%3A%22n%22%2C%22direction%22%3A%22desc%22%7D%5D'
