-- Rule ids are never reused. A block carries its rule's id in its tags and
-- its id is derived from it, so a new rule that took the id of a removed
-- one would claim the removed rule's blocks. SQLite gives a new row
-- MAX(id) + 1 (the id of a removed last rule comes back); PostgreSQL's
-- identity never goes back, but both take ids from here, so the code is
-- one path: add_rule bumps `last` and inserts with that id, in one
-- transaction.
CREATE TABLE id_high_water (
    name TEXT PRIMARY KEY,
    last BIGINT NOT NULL
);

INSERT INTO id_high_water (name, last) SELECT 'rules', COALESCE(MAX(id), 0) FROM rules;
