import type { Reporter, ReportEvent } from '../../src/copy/progress.ts';
import type { StoreOptions } from '../../src/copy/open-store.ts';
import { runCopy, runSync, type SyncOptions, type TransferOptions } from '../../src/copy/run.ts';
import type { TestS3 } from '../helpers/s3.ts';

/** A reporter that keeps every event, for assertions. */
export class RecordingReporter implements Reporter {
  readonly events: ReportEvent[] = [];
  /** Called with each event as it happens (to interrupt a copy half-way, say). */
  listener: ((event: ReportEvent) => void) | undefined;
  report(event: ReportEvent): void {
    this.events.push(event);
    this.listener?.(event);
  }
  close(): void {}
  of<K extends ReportEvent['event']>(kind: K): Extract<ReportEvent, { event: K }>[] {
    return this.events.filter((event): event is Extract<ReportEvent, { event: K }> => event.event === kind);
  }
  /** The failure message, for assertion messages. */
  failure(): string {
    return this.of('image-failed')
      .map((event) => `${event.code}: ${event.message}`)
      .join('\n');
  }
}

export interface TransferSettings {
  tempDir: string;
  s3?: TestS3;
  source?: Partial<StoreOptions>;
  destination?: Partial<StoreOptions>;
  options?: Partial<SyncOptions>;
  reporter?: RecordingReporter;
}

function transferOptions(settings: TransferSettings, reporter: RecordingReporter): SyncOptions {
  const shared: StoreOptions = {
    authFiles: [],
    tempDir: settings.tempDir,
    ...(settings.s3 === undefined ? {} : { s3: { region: 'us-east-1', endpoint: settings.s3.endpoint, forcePathStyle: true, credentials: settings.s3.credentials } }),
  };
  return {
    source: { ...shared, ...settings.source },
    destination: { ...shared, ...settings.destination },
    reporter,
    spoolDir: settings.tempDir,
    ...settings.options,
  } satisfies TransferOptions;
}

/** `berth copy`, in process: the exit code and every event. */
export async function copy(source: string, destination: string, settings: TransferSettings): Promise<{ code: number; reporter: RecordingReporter }> {
  const reporter = settings.reporter ?? new RecordingReporter();
  const code = await runCopy(source, destination, transferOptions(settings, reporter));
  return { code, reporter };
}

/** `berth sync`, in process. */
export async function sync(source: string, destination: string, settings: TransferSettings): Promise<{ code: number; reporter: RecordingReporter }> {
  const reporter = settings.reporter ?? new RecordingReporter();
  const code = await runSync(source, destination, transferOptions(settings, reporter));
  return { code, reporter };
}
