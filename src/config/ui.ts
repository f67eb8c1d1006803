import { z } from 'zod';
import { duration } from './units.ts';

/** The web UI and its JSON API (docs/ui.md). */
export const uiConfig = z
  .strictObject({
    /** Serve the UI under /ui/ and the JSON API under /berth/api/v1/. */
    enabled: z.boolean().default(true),
    /** How long a UI sign-in lasts. */
    sessionTtl: duration.prefault('12h'),
  })
  .prefault({});

export type UiConfig = z.output<typeof uiConfig>;
