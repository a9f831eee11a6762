-- name: adoption_tables
-- Which of the named tables exist in public (the app's, when broseph did not create them).
SELECT c.relname::text AS table_name
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
   AND c.relname = ANY (%(tables)s::text[]);

-- name: adoption_columns
-- Every column of the named tables with its type as the jobs see it: a domain is read as its
-- base type; an enum comes with its labels.
SELECT c.relname::text AS table_name, a.attname::text AS column_name,
       pg_catalog.format_type(bt.oid, NULL) AS type_name, bt.typname::text AS type_short,
       bt.typtype::text AS type_kind,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e
              WHERE e.enumtypid = bt.oid ORDER BY e.enumsortorder) AS labels
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
 WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY (%(tables)s::text[]);

-- name: adoption_keys
-- The unique keys of the named tables that ON CONFLICT and the jobs' lookups can rely on:
-- primary keys and unique constraints or indexes on plain columns, without a WHERE.
SELECT c.relname::text AS table_name,
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) AS k
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k)
           AS columns
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
 WHERE i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
   AND c.relnamespace = 'public'::regnamespace AND c.relname = ANY (%(tables)s::text[]);

-- name: adoption_footprint
-- What a migration could add to (or take from) an app-owned table: its columns, indexes,
-- constraints, triggers, policies and whether row-level security is on.
SELECT c.relname::text AS table_name, f.kind, f.name
  FROM pg_catalog.pg_class c
 CROSS JOIN LATERAL (
    SELECT 'column' AS kind, a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
           AS name
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'index', ic.relname::text
      FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
     WHERE i.indrelid = c.oid
    UNION ALL
    SELECT 'constraint', co.conname::text
      FROM pg_catalog.pg_constraint co
     WHERE co.conrelid = c.oid AND co.contype NOT IN ('p', 'u', 'x')
    UNION ALL
    SELECT 'trigger', tg.tgname::text
      FROM pg_catalog.pg_trigger tg WHERE tg.tgrelid = c.oid AND NOT tg.tgisinternal
    UNION ALL
    SELECT 'policy', po.polname::text FROM pg_catalog.pg_policy po WHERE po.polrelid = c.oid
    UNION ALL
    SELECT 'row-level security', 'on' WHERE c.relrowsecurity
 ) AS f
 WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY (%(tables)s::text[]);
