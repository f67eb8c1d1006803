/**
 * The web UI's browse index (src/meta/browse-index.ts), as one SQLite
 * migration: per repository counts, bytes of distinct blobs and last push
 * in `repository_stats`, kept by triggers so that every path that writes
 * (pushes, proxy fills, GC, retention, `berth gc` in another process)
 * keeps them right; a trigram FTS5 index over names for substring search.
 * Filled from what is stored when the migration runs.
 */
export const sqliteBrowseMigration = `
  CREATE TABLE repository_stats (
    repository_id INTEGER PRIMARY KEY REFERENCES repositories(id),
    manifests INTEGER NOT NULL DEFAULT 0,
    tags INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    pushed_at INTEGER NOT NULL DEFAULT 0
  );
  INSERT INTO repository_stats (repository_id, manifests, tags, bytes, pushed_at)
    SELECT r.id,
      (SELECT COUNT(*) FROM manifests m WHERE m.repository_id = r.id),
      (SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id),
      (SELECT COALESCE(SUM(b.size), 0) FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = r.id),
      max(COALESCE((SELECT MAX(created_at) FROM manifests m WHERE m.repository_id = r.id), 0),
          COALESCE((SELECT MAX(updated_at) FROM tags t WHERE t.repository_id = r.id), 0))
    FROM repositories r;
  CREATE INDEX repository_stats_by_push ON repository_stats(pushed_at, repository_id);
  CREATE INDEX repository_stats_by_size ON repository_stats(bytes, repository_id);

  CREATE TRIGGER repositories_browse_insert AFTER INSERT ON repositories BEGIN
    INSERT INTO repository_stats (repository_id) VALUES (NEW.id);
    INSERT INTO repository_names (rowid, name) VALUES (NEW.id, NEW.name);
  END;
  CREATE TRIGGER repository_blobs_browse_insert AFTER INSERT ON repository_blobs BEGIN
    UPDATE repository_stats SET bytes = bytes + COALESCE((SELECT size FROM blobs WHERE digest = NEW.digest), 0) WHERE repository_id = NEW.repository_id;
  END;
  CREATE TRIGGER repository_blobs_browse_delete AFTER DELETE ON repository_blobs BEGIN
    UPDATE repository_stats SET bytes = bytes - COALESCE((SELECT size FROM blobs WHERE digest = OLD.digest), 0) WHERE repository_id = OLD.repository_id;
  END;
  CREATE TRIGGER manifests_browse_insert AFTER INSERT ON manifests BEGIN
    UPDATE repository_stats SET manifests = manifests + 1, pushed_at = max(pushed_at, NEW.created_at) WHERE repository_id = NEW.repository_id;
  END;
  CREATE TRIGGER manifests_browse_update AFTER UPDATE OF created_at ON manifests BEGIN
    UPDATE repository_stats SET pushed_at = max(pushed_at, NEW.created_at) WHERE repository_id = NEW.repository_id;
  END;
  CREATE TRIGGER manifests_browse_delete AFTER DELETE ON manifests BEGIN
    UPDATE repository_stats SET manifests = manifests - 1 WHERE repository_id = OLD.repository_id;
  END;
  CREATE TRIGGER tags_browse_insert AFTER INSERT ON tags BEGIN
    UPDATE repository_stats SET tags = tags + 1, pushed_at = max(pushed_at, NEW.updated_at) WHERE repository_id = NEW.repository_id;
  END;
  CREATE TRIGGER tags_browse_update AFTER UPDATE OF updated_at ON tags BEGIN
    UPDATE repository_stats SET pushed_at = max(pushed_at, NEW.updated_at) WHERE repository_id = NEW.repository_id;
  END;
  CREATE TRIGGER tags_browse_delete AFTER DELETE ON tags BEGIN
    UPDATE repository_stats SET tags = tags - 1 WHERE repository_id = OLD.repository_id;
  END;

  CREATE VIRTUAL TABLE repository_names USING fts5(name, content='repositories', content_rowid='id', tokenize='trigram');
  INSERT INTO repository_names (repository_names) VALUES ('rebuild');
`;
