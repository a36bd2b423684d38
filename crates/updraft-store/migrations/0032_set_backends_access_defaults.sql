UPDATE backends SET access_defaults = 'open' WHERE environment = 'development'
