import { duration } from './units.ts';
import * as z from './zod.ts';

/** The web UI and its JSON API (docs/ui.md). */
export const uiConfig = z.prefault(
  z.strictObject({
    /** Serve the UI under /ui/ and the JSON API under /berth/api/v1/. */
    enabled: z._default(z.boolean(), true),
    /** How long a UI sign-in lasts. */
    sessionTtl: z.prefault(duration, '12h'),
  }),
  {},
);

export type UiConfig = z.output<typeof uiConfig>;
