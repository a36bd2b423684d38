-- Holds a row while the group commit's transaction is open (sqlite/group_commit.rs): the insert trigger then
-- leaves the batch's search rows to one statement at the batch's end. FTS5 writes its pending rows to disk at
-- every statement that writes it inside a transaction, so a row each would make a segment each, and merging
-- them was most of an insert's time. The row never outlives the transaction that adds it.
CREATE TABLE search_batch (open INTEGER NOT NULL)
