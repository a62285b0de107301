-- 0002_notify_parts: a statement that changes many rows notifies their ids in several parts of
-- one seq instead of no ids at all (which made every other api_svc node reload the collection).
-- Payload version 2 (docs/schema.md "Change notifications"):
--   {"v":2,"collection":"<service uuid>","seq":N,"op":"...","count":n,"part":i,"parts":m,
--    "ids":[...]|null}
-- Up to fg_notify_ids_per_part() ids a part (payloads stay under NOTIFY's 8000 bytes); changes of
-- more than fg_notify_max_ids() rows send one part with ids null (the node reloads).

-- Ids listed in one notification: 150 uuids are 5,850 bytes of JSON.
CREATE FUNCTION fg_notify_ids_per_part() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 150';

-- Rows above which a statement's ids are not sent (the nodes reload the collection instead).
CREATE FUNCTION fg_notify_max_ids() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 100000';

-- Sends one change as parts 1..m of one seq (delivered at commit, in commit order, together).
CREATE OR REPLACE FUNCTION fg_notify(p_service uuid, p_op text, p_seq bigint, p_count bigint, p_ids uuid[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_total integer := coalesce(cardinality(p_ids), 0);
    v_size integer := fg_notify_ids_per_part();
    v_parts integer;
    v_ids uuid[] := CASE WHEN v_total <= fg_notify_max_ids() THEN p_ids END;
BEGIN
    v_parts := CASE WHEN v_ids IS NULL THEN 1 ELSE greatest(1, (v_total + v_size - 1) / v_size) END;
    FOR i IN 1..v_parts LOOP
        PERFORM pg_notify('facegrid_changes', json_build_object(
            'v', 2, 'collection', p_service, 'seq', p_seq, 'op', p_op, 'count', p_count,
            'part', i, 'parts', v_parts,
            'ids', CASE WHEN v_ids IS NOT NULL THEN to_json(v_ids[(i - 1) * v_size + 1 : i * v_size]) END
        )::text);
    END LOOP;
END
$$;

-- As in 0001, with the ids of up to fg_notify_max_ids() rows (was 100).
CREATE OR REPLACE FUNCTION fg_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
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
                v_ids := CASE WHEN r.n <= fg_notify_max_ids() THEN
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
                v_ids := CASE WHEN r.n <= fg_notify_max_ids() THEN
                    (SELECT array_agg(id ORDER BY id) FROM changed_new WHERE service_id = r.service_id) END;
                PERFORM fg_notify(r.service_id, v_op, v_seq, r.n, v_ids);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

-- TRUNCATE: as in 0001, in payload version 2.
CREATE OR REPLACE FUNCTION fg_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'subjects' THEN
        UPDATE collection_state SET seq = seq + 1, subject_count = 0, example_count = 0;
    ELSIF TG_TABLE_NAME = 'face_examples' THEN
        UPDATE collection_state SET seq = seq + 1, example_count = 0;
    END IF;
    PERFORM pg_notify('facegrid_changes', json_build_object(
        'v', 2, 'collection', NULL, 'seq', NULL, 'op', 'truncate', 'count', NULL,
        'part', 1, 'parts', 1, 'ids', NULL)::text);
    RETURN NULL;
END
$$;
