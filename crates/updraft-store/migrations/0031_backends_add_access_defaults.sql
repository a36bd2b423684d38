-- Access defaults per backend; backends made before them take what a new app's backend of their environment
-- gets (development open, production locked).
ALTER TABLE backends ADD COLUMN access_defaults TEXT NOT NULL DEFAULT 'locked'
