import { cloudEventJson } from '../events/cloudevents.ts';
import type { EventRecorder } from '../events/recorder.ts';
import type { ByteRange } from '../blobs/blob-store.ts';
import type { Page } from '../meta/meta-store.ts';
import type { MediaTypeAcceptance } from '../oci/accept.ts';
import type { Digest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';
import type { PullRecorder } from '../policy/pull-recorder.ts';
import type { BlobBody, ManifestContent, ManifestRead, Repository, RepositorySource, RepositoryWriter } from '../registry/repository.ts';

/** Who hears of pulls: the pull events' recorder, retention's pull times. */
export interface PullListeners {
  events?: EventRecorder;
  pulls?: PullRecorder;
}

/**
 * Wraps a source's repositories so that every manifest they serve (a pull;
 * not a HEAD) is recorded where it is read: a pull event (gathered and
 * queued within a moment) and the pull time retention keeps. Works the same
 * for every kind of repository.
 */
export function recordingPulls(source: RepositorySource, listeners: PullListeners): RepositorySource {
  const wrapped: RepositorySource = {
    open: async (name, signal) => new PullRecordingRepository(await source.open(name, signal), listeners),
    catalog: (page, signal) => source.catalog(page, signal),
  };
  const { retainedBlobs, close } = source;
  if (retainedBlobs !== undefined) wrapped.retainedBlobs = () => retainedBlobs.call(source);
  if (close !== undefined) wrapped.close = () => close.call(source);
  return wrapped;
}

class PullRecordingRepository implements Repository {
  readonly name: RepositoryName;
  readonly writer?: RepositoryWriter;
  readonly #inner: Repository;
  readonly #listeners: PullListeners;

  constructor(inner: Repository, listeners: PullListeners) {
    this.name = inner.name;
    if (inner.writer !== undefined) this.writer = inner.writer;
    this.#inner = inner;
    this.#listeners = listeners;
  }

  async manifest(reference: Reference, accept: MediaTypeAcceptance, signal?: AbortSignal, read: ManifestRead = 'pull'): Promise<ManifestContent> {
    const content = await this.#inner.manifest(reference, accept, signal, read);
    if (read === 'pull') this.#pulled(reference, content);
    return content;
  }

  blobSize(digest: Digest, signal?: AbortSignal): Promise<number> {
    return this.#inner.blobSize(digest, signal);
  }

  openBlob(digest: Digest, range: ByteRange | undefined, signal?: AbortSignal): Promise<BlobBody> {
    return this.#inner.openBlob(digest, range, signal);
  }

  tags(page: Page, signal?: AbortSignal): Promise<Tag[]> {
    return this.#inner.tags(page, signal);
  }

  referrers(subject: Digest, artifactType: string | undefined, signal?: AbortSignal, page?: Page): Promise<Descriptor[]> {
    return this.#inner.referrers(subject, artifactType, signal, page);
  }

  #pulled(reference: Reference, content: ManifestContent): void {
    const { events, pulls } = this.#listeners;
    const { name: repository } = this;
    const { digest, mediaType } = content;
    pulls?.pulled(repository, digest);
    if (events === undefined) return;
    // The event's JSON is built when it is written, and only when a webhook takes it. What waits
    // until then holds only strings that live on anyway and numbers, not the content read.
    const at = Date.now();
    const size = content.bytes.byteLength;
    const tag = reference.kind === 'tag' ? reference.tag : undefined;
    events.recordSoon('io.berth.manifest.pulled', repository, () => {
      const subject = tag === undefined ? `${repository}@${digest}` : `${repository}:${tag}`;
      const data = { repository, digest, mediaType, size, reference: tag ?? digest };
      return cloudEventJson(events.source, 'io.berth.manifest.pulled', subject, data, at);
    });
  }
}
