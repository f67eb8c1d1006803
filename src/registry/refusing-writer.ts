import type { RegistryError } from '../errors/registry-error.ts';
import type { RepositoryWriter } from './repository.ts';

/**
 * A writer for a kind that takes no pushes: every write fails with the
 * kind's own reason, so a client learns why and where to push instead.
 * `accepted` replaces the few writes a kind does take (a droplet upload's
 * delete).
 */
export function refusingWriter(reason: () => RegistryError, accepted: Partial<RepositoryWriter> = {}): RepositoryWriter {
  const refuse = async (): Promise<never> => {
    throw reason();
  };
  return {
    startUpload: refuse,
    uploadStatus: refuse,
    appendUpload: refuse,
    finishUpload: refuse,
    cancelUpload: refuse,
    mountBlob: refuse,
    putManifest: refuse,
    deleteManifest: refuse,
    deleteBlob: refuse,
    ...accepted,
  };
}
