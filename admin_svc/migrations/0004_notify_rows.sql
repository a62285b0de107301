-- 0004_notify_rows: a small change of face examples carries its rows in the notification, so a
-- listening api_svc node applies it without fetching the rows back (the fetch was most of the
-- sync lag between nodes: docs/benchmarks.md, sync lag).
-- Payload version stays 2 (docs/schema.md "Change notifications"); example_insert and
-- example_update notifications of one part and at most fg_notify_max_rows() rows gain an optional
-- field, sent only when the whole payload stays under NOTIFY's 8000 bytes:
--   "rows":[{"id":"<uuid>","subject_id":"<uuid>","subject":"<name>","calculator":"<name>",
--            "embedding":"<base64 of the float32 bytes>","version":<xmin>}, ...]
-- A listener without it (older api_svc) ignores the field and fetches the ids, as before.

-- Rows above which a change's rows are not sent (a 128-d row is about 900 bytes of JSON).
CREATE FUNCTION fg_notify_max_rows() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 8';

-- As in 0002, with the rows of a small example insert or update when they fit.
CREATE OR REPLACE FUNCTION fg_notify(p_service uuid, p_op text, p_seq bigint, p_count bigint, p_ids uuid[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_total integer := coalesce(cardinality(p_ids), 0);
    v_size integer := fg_notify_ids_per_part();
    v_parts integer;
    v_ids uuid[] := CASE WHEN v_total <= fg_notify_max_ids() THEN p_ids END;
    v_payload jsonb;
    v_rows json;
    v_text text;
BEGIN
    v_parts := CASE WHEN v_ids IS NULL THEN 1 ELSE greatest(1, (v_total + v_size - 1) / v_size) END;
    FOR i IN 1..v_parts LOOP
        v_payload := jsonb_build_object(
            'v', 2, 'collection', p_service, 'seq', p_seq, 'op', p_op, 'count', p_count,
            'part', i, 'parts', v_parts,
            'ids', CASE WHEN v_ids IS NOT NULL THEN to_jsonb(v_ids[(i - 1) * v_size + 1 : i * v_size]) END);
        v_text := NULL;
        IF v_parts = 1 AND v_ids IS NOT NULL AND v_total BETWEEN 1 AND fg_notify_max_rows()
           AND p_op IN ('example_insert', 'example_update') THEN
            -- Called from the statement's AFTER trigger: the rows are as the statement left them.
            SELECT coalesce(json_agg(json_build_object(
                       'id', e.id, 'subject_id', e.subject_id, 'subject', s.name,
                       'calculator', e.calculator,
                       'embedding', translate(encode(e.embedding, 'base64'), E'\n', ''),
                       'version', e.xmin::text::bigint) ORDER BY e.id), '[]'::json)
              INTO v_rows
              FROM face_examples e JOIN subjects s ON s.id = e.subject_id
             WHERE e.service_id = p_service AND e.id = ANY (v_ids);
            v_text := (v_payload || jsonb_build_object('rows', v_rows))::text;
            IF octet_length(v_text) >= 8000 THEN
                v_text := NULL;  -- too big: the listeners fetch the ids instead
            END IF;
        END IF;
        PERFORM pg_notify('facegrid_changes', coalesce(v_text, v_payload::text));
    END LOOP;
END
$$;
