CREATE UNIQUE INDEX users_by_username ON objects (backend, doc ->> '$.username') WHERE object_type = 'users'
