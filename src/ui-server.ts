import type { FastifyInstance } from 'fastify';
import type { AccessPolicy, SessionAccess } from './http/access.ts';
import type { RepositoryName } from './oci/names.ts';
import type { Registry } from './server.ts';
import type { ProxySource } from './sources/proxy/proxy-source.ts';
import type { LastGc, RecentActivity, RepositoryKind, UiDependencies } from './ui/dependencies.ts';
import { alone, type Peers } from './io/peers.ts';
import { RecentEvents } from './ui/recent-events.ts';
import { uiExtension } from './ui/register.ts';

/** The web UI over an opened registry: its extension for createApp and the observer feeding its recent events. */
export function webUi(
  registry: Registry,
  sessions: SessionAccess | undefined,
  peers: Peers = alone(),
): { extension: (app: FastifyInstance, access?: AccessPolicy) => void; events: RecentEvents } {
  const { config, operations, router, sources, hostedSource } = registry;
  // Longest prefix first, as the router matches.
  const byPrefix = [...sources].sort((a, b) => b.prefix.length - a.prefix.length);
  const routeOf = (name: RepositoryName) => byPrefix.find((route) => name.startsWith(route.prefix));
  const kindOf = (name: RepositoryName): RepositoryKind => routeOf(name)?.kind ?? 'hosted';
  const events = new RecentEvents();
  const deps: UiDependencies = {
    browse: registry.browse,
    kindOf,
    unindexed: sources
      .filter((route) => route.kind === 'archive' || route.kind === 'droplet')
      .map((route) => ({ kind: route.kind, catalog: (page) => route.source.catalog(page) })),
    open: async (name) => {
      const kind = kindOf(name);
      // A cache is shown as stored, without asking its upstream.
      if (kind === 'hosted' || kind === 'proxy') return hostedSource.open(name);
      return router.open(name).catch(() => undefined);
    },
    writer: async (name) => (await router.open(name).catch(() => undefined))?.writer,
    lastPulls: (name) => operations.store.pulls.lastPulls(name),
    immutable: (name, tag) => operations.immutableTags.ruleFor(name, tag) !== undefined,
    upstreamOf: (name, tag) => {
      const route = routeOf(name);
      return route?.kind === 'proxy' ? (route.source as ProxySource).upstreamOf(name, tag) : undefined;
    },
    deletes: config.registry.deletes,
    operations: {
      quotas: () => operations.quotas.report(),
      activity: async (limit) => {
        // Each worker saw its own changes; the leader runs the passes.
        const seen = await peers.gather<RecentActivity>('ui-activity');
        const next = seen.find((each) => each.nextGc !== undefined)?.nextGc;
        return {
          ...latestGc(seen),
          ...(next === undefined ? {} : { nextGc: next }),
          events: seen
            .flatMap((each) => each.events)
            .sort((a, b) => b.at.getTime() - a.at.getTime())
            .slice(0, limit),
        };
      },
      gcInterval: config.gc.interval,
      retentionConfigured: operations.retention.configured,
      retentionPreview: () => operations.applyRetention({ dryRun: true }),
    },
    events,
    sessionTtl: config.ui.sessionTtl,
  };
  peers.answer<RecentActivity>('ui-activity', () => {
    const last = operations.lastGc;
    const next = operations.nextGc();
    return {
      ...(last === undefined
        ? {}
        : {
            lastGc: {
              finishedAt: last.finishedAt,
              seconds: last.seconds,
              bytesFreed: last.report.bytesFreed,
              blobsDeleted: last.report.blobsDeleted,
              manifestsDeleted: last.report.manifestsDeleted,
              linksRemoved: last.report.linksRemoved,
            },
          }),
      ...(next === undefined ? {} : { nextGc: next }),
      events: events.list(),
    };
  });
  return { extension: uiExtension(deps, sessions), events };
}

/** The most recent pass any worker knows of. */
function latestGc(seen: RecentActivity[]): { lastGc?: LastGc } {
  let latest: LastGc | undefined;
  for (const { lastGc } of seen) if (lastGc !== undefined && (latest === undefined || lastGc.finishedAt > latest.finishedAt)) latest = lastGc;
  return latest === undefined ? {} : { lastGc: latest };
}
