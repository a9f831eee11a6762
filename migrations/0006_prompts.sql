-- 0006 — GeneratePrompt: one conversation prompt per group per local day.
--
-- Enqueued by the worker's `prompt_fanout` periodic task (broseph/jobs/generate_prompt.py) with
-- idempotency key prompt:<group_id>:<local_date>, and by anything else that wants a group's
-- prompt. The natural key is public.prompts (group_id, local_date) (migrations/0002).
--
-- local_date is optional in the params: without it the handler uses the group's local date when
-- the job was enqueued (the record's created_at), never the date at run time, so a retry after
-- midnight still stores for the intended day.
-- lock_fields group_id: two jobs for one group (say a scheduled one and a manual one under
-- another key) never run at once; the INSERT … ON CONFLICT DO NOTHING settles any that race.

INSERT INTO broseph.job_types
    (name, task_name, queue, fields, coalesce_fields, coalesce_delay, lock_fields, max_attempts,
     description)
VALUES (
    'GeneratePrompt', 'GeneratePrompt', 'prompts',
    '{"group_id": {"type": "uuid"}, "local_date": {"type": "date", "required": false}}',
    NULL, NULL, ARRAY['group_id'], 4,
    'The daily conversation prompt of one group for one local day, written by OpenAI when a key '
    'is configured and by the offline bank otherwise (or when the AI gives up), stored in '
    'public.prompts with its source.'
);

-- The fan-out query (broseph/queries/prompts.sql, prompt_fanout_targets) needs no new index:
-- active groups by time zone use groups_active_idx (0002), "has a prompt for that date" uses the
-- unique (group_id, local_date) index of public.prompts, and "has a job under that key" the
-- unique index on broseph.job_records (idempotency_key) (0003). The same prompts index, scanned
-- backwards, serves a group's last 30 prompts.
