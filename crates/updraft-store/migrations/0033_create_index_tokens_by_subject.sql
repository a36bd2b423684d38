-- A user's tokens are found by subject when the user is deleted or changes its password.
CREATE INDEX tokens_by_subject ON tokens (subject)
