-- 0001_initial: accounts, applications, services (face collections), subjects, face examples,
-- statistics, embedding migrations, and the change-notification triggers.
-- Documented in docs/schema.md; api_svc is written against that document.

-- Deployment-wide settings written once (e.g. the development token secret, the demo marker).
CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL
                  CHECK (char_length(email) BETWEEN 3 AND 254 AND email = lower(email)),
    first_name    text NOT NULL CHECK (char_length(first_name) BETWEEN 1 AND 50),
    last_name     text NOT NULL DEFAULT '' CHECK (char_length(last_name) <= 50),
    global_role   text NOT NULL CHECK (global_role IN ('OWNER', 'ADMINISTRATOR', 'USER')),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);
-- At most one global OWNER.
CREATE UNIQUE INDEX users_one_owner ON users ((true)) WHERE global_role = 'OWNER';

-- Sign-in sessions: the refresh token's secret is stored only as its SHA-256.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_hash bytea NOT NULL CHECK (octet_length(refresh_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    refreshed_at timestamptz,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE applications (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 50),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX applications_name_key ON applications (lower(name));

CREATE TABLE app_members (
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role           text NOT NULL CHECK (role IN ('OWNER', 'ADMINISTRATOR', 'USER')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (application_id, user_id)
);
-- At most one OWNER per application.
CREATE UNIQUE INDEX app_members_one_owner ON app_members (application_id) WHERE role = 'OWNER';
CREATE INDEX app_members_user_id ON app_members (user_id);

-- Services ("models" in CompreFace): one face collection each, reached with its API key.
CREATE TABLE services (
    id             uuid PRIMARY KEY,
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 50),
    type           text NOT NULL CHECK (type IN ('RECOGNITION', 'DETECTION', 'VERIFICATION')),
    -- 128 random bits in UUID form; shown to members, looked up only through its digest.
    api_key        uuid NOT NULL,
    api_key_sha256 bytea GENERATED ALWAYS AS (sha256(uuid_send(api_key))) STORED,
    -- Calculator (embedding model) the collection uses; NULL = embed_svc's default.
    calculator     text CHECK (calculator IS NULL OR char_length(calculator) BETWEEN 1 AND 100),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX services_api_key_sha256_key ON services (api_key_sha256);
CREATE UNIQUE INDEX services_name_key ON services (application_id, lower(name));

-- One row per collection: the change counter behind every NOTIFY (bumped under this row's lock,
-- so sequence numbers are gap-free and in commit order), exact counts, and the migration block.
CREATE TABLE collection_state (
    service_id     uuid PRIMARY KEY REFERENCES services (id) ON DELETE CASCADE,
    seq            bigint NOT NULL DEFAULT 0,
    subject_count  bigint NOT NULL DEFAULT 0,
    example_count  bigint NOT NULL DEFAULT 0,
    writes_blocked boolean NOT NULL DEFAULT false
);

CREATE TABLE subjects (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 50 AND name !~ '[;/\\]'),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subjects_service_name_key UNIQUE (service_id, name),
    CONSTRAINT subjects_id_service_key UNIQUE (id, service_id)
);

-- Face examples (CompreFace's "faces"/"images"): id is CompreFace's image_id.
CREATE TABLE face_examples (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    service_id         uuid NOT NULL,
    subject_id         uuid NOT NULL,
    -- L2-normalised float32 vector, little-endian, embedding_dim values.
    embedding          bytea NOT NULL,
    embedding_dim      smallint NOT NULL CHECK (embedding_dim BETWEEN 1 AND 4096),
    calculator         text NOT NULL CHECK (char_length(calculator) BETWEEN 1 AND 100),
    calculator_version text NOT NULL DEFAULT '',
    image              bytea,
    image_content_type text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT face_examples_embedding_size CHECK (octet_length(embedding) = 4 * embedding_dim),
    CONSTRAINT face_examples_subject_fkey FOREIGN KEY (subject_id, service_id)
        REFERENCES subjects (id, service_id) ON DELETE CASCADE
);
-- Images are already compressed: keep them out of line, uncompressed.
ALTER TABLE face_examples ALTER COLUMN image SET STORAGE EXTERNAL;
CREATE INDEX face_examples_service_id ON face_examples (service_id, id);
CREATE INDEX face_examples_subject_id ON face_examples (subject_id);

-- Requests per service per day (UTC).
CREATE TABLE service_stats (
    service_id    uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    day           date NOT NULL,
    request_count bigint NOT NULL DEFAULT 0 CHECK (request_count >= 0),
    PRIMARY KEY (service_id, day)
);

CREATE TABLE embedding_migrations (
    id                uuid PRIMARY KEY,
    service_id        uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    target_calculator text NOT NULL,
    target_version    text NOT NULL DEFAULT '',
    status            text NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED')),
    total_count       integer NOT NULL DEFAULT 0,
    migrated_count    integer NOT NULL DEFAULT 0,
    skipped_count     integer NOT NULL DEFAULT 0,
    failed_count      integer NOT NULL DEFAULT 0,
    error_message     text NOT NULL DEFAULT '',
    worker            text NOT NULL DEFAULT '',
    heartbeat_at      timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE UNIQUE INDEX embedding_migrations_one_running
    ON embedding_migrations (service_id) WHERE status = 'RUNNING';
CREATE INDEX embedding_migrations_service_id ON embedding_migrations (service_id, created_at);

-- New embeddings staged by a running migration; swapped in at once when it succeeds.
-- A NULL embedding marks an example whose image embed_svc rejected.
CREATE TABLE embedding_migration_items (
    migration_id  uuid NOT NULL REFERENCES embedding_migrations (id) ON DELETE CASCADE,
    example_id    uuid NOT NULL REFERENCES face_examples (id) ON DELETE CASCADE,
    embedding     bytea,
    embedding_dim smallint,
    PRIMARY KEY (migration_id, example_id)
);
CREATE INDEX embedding_migration_items_example_id ON embedding_migration_items (example_id);

-- ---------------------------------------------------------------------------------------------
-- Statistics: the atomic upsert api_svc nodes call, e.g. SELECT fg_count_requests($1, 1).
CREATE FUNCTION fg_count_requests(p_service uuid, p_count integer DEFAULT 1, p_day date DEFAULT NULL)
RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO service_stats AS s (service_id, day, request_count)
    VALUES (p_service, COALESCE(p_day, (now() AT TIME ZONE 'UTC')::date), p_count)
    ON CONFLICT (service_id, day)
    DO UPDATE SET request_count = s.request_count + EXCLUDED.request_count
    RETURNING request_count
$$;

-- ---------------------------------------------------------------------------------------------
-- Change notifications. Channel 'facegrid_changes'; payload (JSON, < 8000 bytes):
--   {"v":1,"collection":"<service uuid>","seq":N,"op":"...","count":n,"ids":[...]|null}
-- ids holds the affected row ids when count <= 100, else null (the node reloads the collection).

-- Sends one notification (delivered at commit, in commit order).
CREATE FUNCTION fg_notify(p_service uuid, p_op text, p_seq bigint, p_count bigint, p_ids uuid[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('facegrid_changes', json_build_object(
        'v', 1, 'collection', p_service, 'seq', p_seq, 'op', p_op, 'count', p_count,
        'ids', CASE WHEN p_ids IS NOT NULL AND cardinality(p_ids) <= 100 THEN to_json(p_ids) END
    )::text);
END
$$;

-- Locks a collection's counter row, adjusts its counts and, when p_bump, takes the next
-- sequence number (returned) and refuses the write (SQLSTATE FG032) while a migration blocks writes,
-- unless this transaction is that migration. NULL when the collection no longer exists.
CREATE FUNCTION fg_collection_bump(p_service uuid, p_subjects bigint, p_examples bigint, p_bump boolean)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_blocked boolean;
BEGIN
    UPDATE collection_state
       SET seq = seq + CASE WHEN p_bump THEN 1 ELSE 0 END,
           subject_count = subject_count + p_subjects,
           example_count = example_count + p_examples
     WHERE service_id = p_service
    RETURNING seq, writes_blocked INTO v_seq, v_blocked;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF p_bump AND v_blocked
       AND current_setting('facegrid.migration_writer', true) IS DISTINCT FROM p_service::text THEN
        RAISE EXCEPTION 'collection % is being migrated to another calculator: writes are refused until it ends', p_service
            USING ERRCODE = 'FG032';
    END IF;
    RETURN v_seq;
END
$$;

-- Bumps a collection's sequence and sends {"op":"collection_update"}: for changes that are
-- not rows of services/subjects/face_examples (e.g. a migration blocking or unblocking writes).
CREATE FUNCTION fg_collection_touch(p_service uuid) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
BEGIN
    UPDATE collection_state SET seq = seq + 1 WHERE service_id = p_service RETURNING seq INTO v_seq;
    IF FOUND THEN
        PERFORM fg_notify(p_service, 'collection_update', v_seq, 1, ARRAY[p_service]);
    END IF;
    RETURN v_seq;
END
$$;

-- Statement-level trigger of subjects and face_examples: one notification per statement and
-- collection. A cascade (deleting subjects deletes their examples) fires it once more for the
-- cascaded table, with every cascaded row in one transition table: one extra notification, not
-- one per parent row. Rows of a deleted service notify nothing (its counter row is gone; the
-- service's own collection_delete covers them).
CREATE FUNCTION fg_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_is_subjects boolean := TG_TABLE_NAME = 'subjects';
    v_sign integer := CASE TG_OP WHEN 'INSERT' THEN 1 WHEN 'DELETE' THEN -1 ELSE 0 END;
    v_op text := CASE WHEN TG_TABLE_NAME = 'subjects' THEN 'subject_' ELSE 'example_' END
                 || lower(TG_OP);
    v_seq bigint;
    v_ids uuid[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        FOR r IN SELECT service_id, count(*) AS n FROM changed_old
                 GROUP BY service_id ORDER BY service_id LOOP
            v_seq := fg_collection_bump(r.service_id,
                CASE WHEN v_is_subjects THEN -r.n ELSE 0 END,
                CASE WHEN v_is_subjects THEN 0 ELSE -r.n END, true);
            IF v_seq IS NOT NULL THEN
                v_ids := CASE WHEN r.n <= 100 THEN
                    (SELECT array_agg(id ORDER BY id) FROM changed_old WHERE service_id = r.service_id) END;
                PERFORM fg_notify(r.service_id, v_op, v_seq, r.n, v_ids);
            END IF;
        END LOOP;
    ELSE
        FOR r IN SELECT service_id, count(*) AS n FROM changed_new
                 GROUP BY service_id ORDER BY service_id LOOP
            v_seq := fg_collection_bump(r.service_id,
                CASE WHEN v_is_subjects THEN v_sign * r.n ELSE 0 END,
                CASE WHEN v_is_subjects THEN 0 ELSE v_sign * r.n END, true);
            IF v_seq IS NOT NULL THEN
                v_ids := CASE WHEN r.n <= 100 THEN
                    (SELECT array_agg(id ORDER BY id) FROM changed_new WHERE service_id = r.service_id) END;
                PERFORM fg_notify(r.service_id, v_op, v_seq, r.n, v_ids);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER subjects_insert AFTER INSERT ON subjects
    REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION fg_rows_changed();
CREATE TRIGGER subjects_update AFTER UPDATE ON subjects
    REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION fg_rows_changed();
CREATE TRIGGER subjects_delete AFTER DELETE ON subjects
    REFERENCING OLD TABLE AS changed_old FOR EACH STATEMENT EXECUTE FUNCTION fg_rows_changed();
CREATE TRIGGER face_examples_insert AFTER INSERT ON face_examples
    REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION fg_rows_changed();
CREATE TRIGGER face_examples_update AFTER UPDATE ON face_examples
    REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION fg_rows_changed();
CREATE TRIGGER face_examples_delete AFTER DELETE ON face_examples
    REFERENCING OLD TABLE AS changed_old FOR EACH STATEMENT EXECUTE FUNCTION fg_rows_changed();

-- A subject or example may not move to another collection (ids and counts would go wrong).
CREATE FUNCTION fg_forbid_collection_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.service_id cannot change', TG_TABLE_NAME USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER subjects_no_move BEFORE UPDATE OF service_id ON subjects FOR EACH ROW
    WHEN (OLD.service_id IS DISTINCT FROM NEW.service_id) EXECUTE FUNCTION fg_forbid_collection_move();
CREATE TRIGGER face_examples_no_move BEFORE UPDATE OF service_id ON face_examples FOR EACH ROW
    WHEN (OLD.service_id IS DISTINCT FROM NEW.service_id) EXECUTE FUNCTION fg_forbid_collection_move();

-- Services: create the counter row; notify creation, updates (name, key, calculator) and
-- deletion (also when cascaded from deleting an application).
CREATE FUNCTION fg_services_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_seq bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        FOR r IN SELECT id FROM changed_new ORDER BY id LOOP
            INSERT INTO collection_state (service_id) VALUES (r.id);
            PERFORM fg_notify(r.id, 'collection_create', 0, 1, ARRAY[r.id]);
        END LOOP;
    ELSIF TG_OP = 'UPDATE' THEN
        FOR r IN SELECT id FROM changed_new ORDER BY id LOOP
            UPDATE collection_state SET seq = seq + 1 WHERE service_id = r.id RETURNING seq INTO v_seq;
            PERFORM fg_notify(r.id, 'collection_update', v_seq, 1, ARRAY[r.id]);
        END LOOP;
    ELSE
        FOR r IN SELECT id FROM changed_old ORDER BY id LOOP
            PERFORM fg_notify(r.id, 'collection_delete', NULL, 1, ARRAY[r.id]);
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER services_insert AFTER INSERT ON services
    REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION fg_services_changed();
CREATE TRIGGER services_update AFTER UPDATE ON services
    REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION fg_services_changed();
CREATE TRIGGER services_delete AFTER DELETE ON services
    REFERENCING OLD TABLE AS changed_old FOR EACH STATEMENT EXECUTE FUNCTION fg_services_changed();

-- TRUNCATE bypasses row triggers: reset the counts and tell every node to reload everything.
CREATE FUNCTION fg_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'subjects' THEN
        UPDATE collection_state SET seq = seq + 1, subject_count = 0, example_count = 0;
    ELSIF TG_TABLE_NAME = 'face_examples' THEN
        UPDATE collection_state SET seq = seq + 1, example_count = 0;
    END IF;
    PERFORM pg_notify('facegrid_changes', json_build_object(
        'v', 1, 'collection', NULL, 'seq', NULL, 'op', 'truncate', 'count', NULL, 'ids', NULL)::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER subjects_truncate AFTER TRUNCATE ON subjects
    FOR EACH STATEMENT EXECUTE FUNCTION fg_truncated();
CREATE TRIGGER face_examples_truncate AFTER TRUNCATE ON face_examples
    FOR EACH STATEMENT EXECUTE FUNCTION fg_truncated();
CREATE TRIGGER services_truncate AFTER TRUNCATE ON services
    FOR EACH STATEMENT EXECUTE FUNCTION fg_truncated();
