-- An object whose ACL extends another's (`onCreate: {"accessControlList": "extend"}`) names it here.
ALTER TABLE objects ADD COLUMN parent_type TEXT
