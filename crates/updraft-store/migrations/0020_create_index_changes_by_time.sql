CREATE INDEX changes_by_time ON changes (created_ms)
