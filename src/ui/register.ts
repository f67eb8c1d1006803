import type { FastifyInstance } from 'fastify';
import type { AccessPolicy, SessionAccess } from '../http/access.ts';
import { registerApi } from './api-routes.ts';
import type { UiDependencies } from './dependencies.ts';
import { registerPages } from './pages-routes.ts';
import { UiSessions } from './session.ts';

/**
 * The web UI (/ui/) and its JSON API (/berth/api/v1/), registered beside
 * the registry API like /metrics: `createApp` hands over the access
 * policy; sign-in sessions come from the same access control.
 */
export function uiExtension(deps: UiDependencies, sessions: SessionAccess | undefined): (app: FastifyInstance, access?: AccessPolicy) => void {
  return (app, access) => {
    const uiSessions = new UiSessions(access, access === undefined ? undefined : sessions, deps.sessionTtl);
    registerPages(app, deps, uiSessions);
    registerApi(app, deps, uiSessions);
  };
}
