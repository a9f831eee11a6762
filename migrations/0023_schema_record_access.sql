-- 0023 — A worker reads which procrastinate schema the database holds before it starts.
--
-- The seam (broseph/engine.py) refuses to start a worker whose installed procrastinate does not
-- match the database's procrastinate schema, as recorded in broseph.schema_migrations
-- (broseph/procrastinate_schema.py). The worker connects as the owner or as service_role; the
-- latter may now read that record (names and checksums of applied migration files — nothing a
-- client could use; anon and authenticated get nothing).
GRANT SELECT ON broseph.schema_migrations TO service_role;
