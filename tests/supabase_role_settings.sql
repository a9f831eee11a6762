-- Supabase's per-role settings, for this database only (ALTER ROLE … IN DATABASE): roles are
-- shared by every database of the cluster, and other tests run on it at the same time. A trigger
-- fired by a client's statement runs under the client's statement_timeout.
DO $$
BEGIN
    EXECUTE format('ALTER ROLE anon IN DATABASE %I SET statement_timeout = %L',
                   current_database(), '3s');
    EXECUTE format('ALTER ROLE authenticated IN DATABASE %I SET statement_timeout = %L',
                   current_database(), '8s');
END;
$$;
