import { sqliteBrowseMigration } from './browse-migration.ts';

/**
 * SQLite schema, one entry per version; applied in order, each in its own
 * transaction, and recorded in `schema_migrations`. Never edit a released
 * entry: add a new one. Times are milliseconds since the epoch.
 */
export const sqliteMigrations: readonly string[] = [
  `
  CREATE TABLE repositories (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE repository_blobs (
    repository_id INTEGER NOT NULL REFERENCES repositories(id),
    digest TEXT NOT NULL REFERENCES blobs(digest),
    linked_at INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
  ) WITHOUT ROWID;
  CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);
  CREATE TABLE manifests (
    repository_id INTEGER NOT NULL REFERENCES repositories(id),
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    content BLOB NOT NULL,
    size INTEGER NOT NULL,
    subject TEXT,
    artifact_type TEXT,
    annotations TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
  );
  CREATE INDEX manifests_by_subject ON manifests(repository_id, subject) WHERE subject IS NOT NULL;
  CREATE TABLE manifest_references (
    repository_id INTEGER NOT NULL,
    manifest_digest TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (repository_id, manifest_digest, target)
  ) WITHOUT ROWID;
  CREATE INDEX manifest_references_by_target ON manifest_references(repository_id, target);
  CREATE TABLE tags (
    repository_id INTEGER NOT NULL REFERENCES repositories(id),
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (repository_id, name)
  ) WITHOUT ROWID;
  CREATE INDEX tags_by_digest ON tags(repository_id, digest);
  CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    repository TEXT NOT NULL,
    size INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX uploads_by_update ON uploads(updated_at);
  `,
  // Upload sessions remember who started them (access control binds them to that user).
  `
  ALTER TABLE uploads ADD COLUMN owner TEXT;
  `,
  // Operations (docs/operations.md): GC touches and tombstones, leases, the
  // webhook outbox and pull times. Tables only the OperationsStore uses.
  `
  CREATE TABLE blob_touches (
    digest TEXT PRIMARY KEY,
    touched_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE blob_tombstones (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    condemned_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE event_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook TEXT NOT NULL,
    body TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT
  );
  CREATE INDEX event_queue_by_webhook ON event_queue(webhook, id);
  CREATE TABLE manifest_pulls (
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    pulled_at INTEGER NOT NULL,
    PRIMARY KEY (repository, digest)
  ) WITHOUT ROWID;
  CREATE INDEX manifest_pulls_by_time ON manifest_pulls(pulled_at);
  `,
  // A per-repository counter every tag change bumps (triggers catch every
  // path that writes tags), so tag lists can be cached and revalidated cheaply.
  `
  ALTER TABLE repositories ADD COLUMN tag_version INTEGER NOT NULL DEFAULT 0;
  CREATE TRIGGER tags_bump_version_on_insert AFTER INSERT ON tags
    BEGIN UPDATE repositories SET tag_version = tag_version + 1 WHERE id = NEW.repository_id; END;
  CREATE TRIGGER tags_bump_version_on_update AFTER UPDATE ON tags
    BEGIN UPDATE repositories SET tag_version = tag_version + 1 WHERE id IN (OLD.repository_id, NEW.repository_id); END;
  CREATE TRIGGER tags_bump_version_on_delete AFTER DELETE ON tags
    BEGIN UPDATE repositories SET tag_version = tag_version + 1 WHERE id = OLD.repository_id; END;
  `,
  // The droplet kind's records (docs/cloudfoundry.md): conversions of droplets
  // into layers, droplets per app, rootfs history, and which manifests are
  // compositions. Composed images are ordinary manifests with ordinary links.
  `
  CREATE TABLE droplet_conversions (
    droplet_digest TEXT PRIMARY KEY,
    layer_digest TEXT NOT NULL,
    layer_size INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    process_types TEXT NOT NULL,
    converted_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE droplets (
    source TEXT NOT NULL,
    app TEXT NOT NULL,
    guid TEXT NOT NULL,
    droplet_digest TEXT NOT NULL REFERENCES droplet_conversions(droplet_digest),
    staged_at INTEGER NOT NULL,
    record_repository TEXT NOT NULL,
    record_digest TEXT NOT NULL,
    PRIMARY KEY (source, app, guid)
  ) WITHOUT ROWID;
  CREATE INDEX droplets_by_stage ON droplets(source, app, staged_at);
  CREATE TABLE droplet_rootfs (
    source TEXT NOT NULL,
    layer_digest TEXT NOT NULL,
    layer_size INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    expires_at INTEGER,
    image_repository TEXT,
    image_digest TEXT,
    PRIMARY KEY (source, layer_digest)
  ) WITHOUT ROWID;
  CREATE TABLE droplet_compositions (
    source TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    app TEXT NOT NULL,
    guid TEXT NOT NULL,
    rootfs_digest TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    config_size INTEGER NOT NULL,
    droplet_layer TEXT NOT NULL,
    droplet_layer_size INTEGER NOT NULL,
    droplet_diff_id TEXT NOT NULL,
    PRIMARY KEY (source, repository, digest)
  ) WITHOUT ROWID;
  CREATE INDEX droplet_compositions_by_droplet ON droplet_compositions(source, app, guid);
  CREATE INDEX droplet_compositions_by_rootfs ON droplet_compositions(source, rootfs_digest);
  `,
  // The web UI's browse index: repository stats and a trigram name index (browse-migration.ts).
  sqliteBrowseMigration,
];
