CREATE INDEX members_by_user ON members (backend, user_id)
