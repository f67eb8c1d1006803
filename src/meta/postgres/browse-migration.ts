/**
 * The web UI's browse index (src/meta/browse-index.ts), as one PostgreSQL
 * migration: per repository counts, bytes of distinct blobs and last push
 * (milliseconds) in `repository_stats`, kept by triggers, and a pg_trgm
 * index over names for substring search when the extension can be created
 * (without it, substring searches scan names).
 *
 * The triggers are deferred constraint triggers: they run at commit, after
 * every other lock a transaction takes, so the stats row is always the
 * last lock and two writers cannot deadlock over it.
 */
export const postgresBrowseMigration = `
  CREATE TABLE repository_stats (
    repository_id BIGINT PRIMARY KEY REFERENCES repositories(id),
    manifests BIGINT NOT NULL DEFAULT 0,
    tags BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    pushed_at BIGINT NOT NULL DEFAULT 0
  );
  INSERT INTO repository_stats (repository_id, manifests, tags, bytes, pushed_at)
    SELECT r.id,
      (SELECT COUNT(*) FROM manifests m WHERE m.repository_id = r.id),
      (SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id),
      (SELECT COALESCE(SUM(b.size), 0) FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = r.id),
      GREATEST(
        COALESCE((SELECT floor(extract(epoch FROM MAX(created_at)) * 1000)::bigint FROM manifests m WHERE m.repository_id = r.id), 0),
        COALESCE((SELECT floor(extract(epoch FROM MAX(updated_at)) * 1000)::bigint FROM tags t WHERE t.repository_id = r.id), 0))
    FROM repositories r;
  CREATE INDEX repository_stats_by_push ON repository_stats(pushed_at, repository_id);
  CREATE INDEX repository_stats_by_size ON repository_stats(bytes, repository_id);

  CREATE FUNCTION berth_browse_stats() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE
    row_of RECORD;
    delta BIGINT := CASE TG_OP WHEN 'INSERT' THEN 1 WHEN 'DELETE' THEN -1 ELSE 0 END;
    pushed BIGINT := 0;
  BEGIN
    IF TG_OP = 'DELETE' THEN row_of := OLD; ELSE row_of := NEW; END IF;
    IF TG_TABLE_NAME = 'repositories' THEN
      INSERT INTO repository_stats (repository_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    ELSIF TG_TABLE_NAME = 'repository_blobs' THEN
      UPDATE repository_stats SET bytes = bytes + delta * COALESCE((SELECT size FROM blobs WHERE digest = row_of.digest), 0)
        WHERE repository_id = row_of.repository_id;
    ELSIF TG_TABLE_NAME = 'manifests' THEN
      IF TG_OP <> 'DELETE' THEN pushed := floor(extract(epoch FROM NEW.created_at) * 1000)::bigint; END IF;
      UPDATE repository_stats SET manifests = manifests + delta, pushed_at = GREATEST(pushed_at, pushed) WHERE repository_id = row_of.repository_id;
    ELSIF TG_TABLE_NAME = 'tags' THEN
      IF TG_OP <> 'DELETE' THEN pushed := floor(extract(epoch FROM NEW.updated_at) * 1000)::bigint; END IF;
      UPDATE repository_stats SET tags = tags + delta, pushed_at = GREATEST(pushed_at, pushed) WHERE repository_id = row_of.repository_id;
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER repositories_browse AFTER INSERT ON repositories FOR EACH ROW EXECUTE FUNCTION berth_browse_stats();
  CREATE CONSTRAINT TRIGGER repository_blobs_browse AFTER INSERT OR DELETE ON repository_blobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION berth_browse_stats();
  CREATE CONSTRAINT TRIGGER manifests_browse AFTER INSERT OR UPDATE OF created_at OR DELETE ON manifests
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION berth_browse_stats();
  CREATE CONSTRAINT TRIGGER tags_browse AFTER INSERT OR UPDATE OF updated_at OR DELETE ON tags
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION berth_browse_stats();

  DO $$ BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX repositories_name_trigrams ON repositories USING gin (name gin_trgm_ops);
  EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%): substring searches scan repository names', SQLERRM;
  END $$;
`;
