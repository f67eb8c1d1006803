import { postgresBrowseMigration } from './browse-migration.ts';

/**
 * PostgreSQL schema, one entry per version, the same tables as SQLite's.
 * Applied in order inside one transaction that holds an advisory lock, and
 * recorded in `schema_migrations`. Never edit a released entry: add one.
 * Names, tags and digests use COLLATE "C": listings are in byte order
 * whatever the database's default collation is.
 */
export const postgresMigrations: readonly string[] = [
  `
  CREATE TABLE repositories (
    id BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
  );
  CREATE TABLE blobs (
    digest TEXT COLLATE "C" PRIMARY KEY,
    size BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
  );
  CREATE TABLE repository_blobs (
    repository_id BIGINT NOT NULL REFERENCES repositories(id),
    digest TEXT COLLATE "C" NOT NULL REFERENCES blobs(digest),
    linked_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repository_id, digest)
  );
  CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);
  CREATE TABLE manifests (
    repository_id BIGINT NOT NULL REFERENCES repositories(id),
    digest TEXT COLLATE "C" NOT NULL,
    media_type TEXT NOT NULL,
    content BYTEA NOT NULL,
    size BIGINT NOT NULL,
    subject TEXT COLLATE "C",
    artifact_type TEXT,
    annotations TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repository_id, digest)
  );
  CREATE INDEX manifests_by_subject ON manifests(repository_id, subject) WHERE subject IS NOT NULL;
  CREATE TABLE manifest_references (
    repository_id BIGINT NOT NULL,
    manifest_digest TEXT COLLATE "C" NOT NULL,
    target TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (repository_id, manifest_digest, target)
  );
  CREATE INDEX manifest_references_by_target ON manifest_references(repository_id, target);
  CREATE TABLE tags (
    repository_id BIGINT NOT NULL REFERENCES repositories(id),
    name TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repository_id, name)
  );
  CREATE INDEX tags_by_digest ON tags(repository_id, digest);
  CREATE TABLE uploads (
    id TEXT COLLATE "C" PRIMARY KEY,
    repository TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
  );
  CREATE INDEX uploads_by_update ON uploads(updated_at);
  `,
  // Upload sessions remember who started them (access control binds them to that user).
  `
  ALTER TABLE uploads ADD COLUMN owner TEXT;
  `,
  // Operations (docs/operations.md): GC touches and tombstones, the webhook
  // outbox and pull times. Leases are advisory locks and need no table.
  `
  CREATE TABLE blob_touches (
    digest TEXT COLLATE "C" PRIMARY KEY,
    touched_at TIMESTAMPTZ NOT NULL
  );
  CREATE TABLE blob_tombstones (
    digest TEXT COLLATE "C" PRIMARY KEY,
    size BIGINT NOT NULL,
    condemned_at TIMESTAMPTZ NOT NULL
  );
  CREATE TABLE event_queue (
    id BIGSERIAL PRIMARY KEY,
    webhook TEXT NOT NULL,
    body TEXT NOT NULL,
    enqueued_at TIMESTAMPTZ NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error TEXT
  );
  CREATE INDEX event_queue_by_webhook ON event_queue(webhook, id);
  CREATE TABLE manifest_pulls (
    repository TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    pulled_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repository, digest)
  );
  CREATE INDEX manifest_pulls_by_time ON manifest_pulls(pulled_at);
  `,
  // A per-repository counter every tag change bumps (a trigger catches every
  // path that writes tags), so tag lists can be cached and revalidated cheaply.
  // The update takes no key lock, so it does not conflict with foreign keys.
  `
  ALTER TABLE repositories ADD COLUMN tag_version BIGINT NOT NULL DEFAULT 0;
  CREATE FUNCTION berth_bump_tag_version() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP <> 'INSERT' THEN
      UPDATE repositories SET tag_version = tag_version + 1 WHERE id = OLD.repository_id;
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.repository_id <> OLD.repository_id) THEN
      UPDATE repositories SET tag_version = tag_version + 1 WHERE id = NEW.repository_id;
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER tags_bump_version AFTER INSERT OR UPDATE OR DELETE ON tags
    FOR EACH ROW EXECUTE FUNCTION berth_bump_tag_version();
  `,
  // The droplet kind's records (docs/cloudfoundry.md), as in SQLite.
  `
  CREATE TABLE droplet_conversions (
    droplet_digest TEXT COLLATE "C" PRIMARY KEY,
    layer_digest TEXT COLLATE "C" NOT NULL,
    layer_size BIGINT NOT NULL,
    diff_id TEXT COLLATE "C" NOT NULL,
    process_types TEXT NOT NULL,
    converted_at TIMESTAMPTZ NOT NULL
  );
  CREATE TABLE droplets (
    source TEXT COLLATE "C" NOT NULL,
    app TEXT COLLATE "C" NOT NULL,
    guid TEXT COLLATE "C" NOT NULL,
    droplet_digest TEXT COLLATE "C" NOT NULL REFERENCES droplet_conversions(droplet_digest),
    staged_at TIMESTAMPTZ NOT NULL,
    record_repository TEXT COLLATE "C" NOT NULL,
    record_digest TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (source, app, guid)
  );
  CREATE INDEX droplets_by_stage ON droplets(source, app, staged_at);
  CREATE TABLE droplet_rootfs (
    source TEXT COLLATE "C" NOT NULL,
    layer_digest TEXT COLLATE "C" NOT NULL,
    layer_size BIGINT NOT NULL,
    diff_id TEXT COLLATE "C" NOT NULL,
    origin TEXT NOT NULL,
    imported_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    image_repository TEXT COLLATE "C",
    image_digest TEXT COLLATE "C",
    PRIMARY KEY (source, layer_digest)
  );
  CREATE TABLE droplet_compositions (
    source TEXT COLLATE "C" NOT NULL,
    repository TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    app TEXT COLLATE "C" NOT NULL,
    guid TEXT COLLATE "C" NOT NULL,
    rootfs_digest TEXT COLLATE "C" NOT NULL,
    config_digest TEXT COLLATE "C" NOT NULL,
    config_size BIGINT NOT NULL,
    droplet_layer TEXT COLLATE "C" NOT NULL,
    droplet_layer_size BIGINT NOT NULL,
    droplet_diff_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (source, repository, digest)
  );
  CREATE INDEX droplet_compositions_by_droplet ON droplet_compositions(source, app, guid);
  CREATE INDEX droplet_compositions_by_rootfs ON droplet_compositions(source, rootfs_digest);
  `,
  // The web UI's browse index: repository stats and a trigram name index (browse-migration.ts).
  postgresBrowseMigration,
];
