ALTER TABLE objects ADD COLUMN acl TEXT NOT NULL DEFAULT '{"read":[],"update":[],"delete":[],"admin":[]}'
