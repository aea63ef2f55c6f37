import { computed } from 'vue';
import {
  createRouter,
  createWebHashHistory,
  type LocationQuery,
  type RouteLocationNormalizedLoaded,
  type RouteLocationRaw,
} from 'vue-router';
import { JobKind } from '@shared/engine-protocol';

/**
 * The app's routes (vue-router, hash history): `#/runs`, `#/runs/<id>`, `#/new` (`?kind=`, `?preset=<id>`,
 * `?from=<run id>` to duplicate, `?parent=<run id>` to start from a run's checkpoint, `?checkpoint=<path>`,
 * `?sweep=<id>` to start a sweep from a sweep's runs), `#/compare?runs=a,b`, `#/sweeps`,
 * `#/sweeps/<experiment id>`, `#/datasets`, `#/checkpoints`, `#/compute`; any other address shows the runs.
 * Hash routes work the same from Electron's file:// page and from the web server. Views are loaded when
 * first shown. Code names a place with the typed `Route` below and goes there with `navigate`/`routeHref`.
 */
export type Route =
  | { name: 'runs' }
  | { name: 'run'; id: string }
  | {
      name: 'new';
      kind?: JobKind;
      preset: string | null;
      from: string | null;
      parent?: string | null;
      checkpoint?: string | null;
      /** A sweep whose finished runs a sweep of this kind starts from (fine-tune or evaluate it all). */
      sweepFrom?: number | null;
    }
  | { name: 'compare'; ids: string[] }
  | { name: 'sweeps' }
  | { name: 'sweep'; experimentId: number }
  | { name: 'datasets' }
  | { name: 'checkpoints' }
  | { name: 'compute' };

function queryText(query: LocationQuery, key: string): string | null {
  const value = query[key];
  const first = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' ? first : null;
}

/** The typed route of a vue-router location. */
export function routeOf(location: Pick<RouteLocationNormalizedLoaded, 'name' | 'params' | 'query'>): Route {
  const { params, query } = location;
  const param = (key: string): string => {
    const value = params[key];
    return (Array.isArray(value) ? value[0] : value) ?? '';
  };
  switch (location.name) {
    case 'run':
      return { name: 'run', id: param('id') };
    case 'new': {
      const kind = JobKind.safeParse(queryText(query, 'kind'));
      const sweep = queryText(query, 'sweep') ?? '';
      return {
        name: 'new',
        kind: kind.success ? kind.data : 'pretrain',
        preset: queryText(query, 'preset'),
        from: queryText(query, 'from'),
        parent: queryText(query, 'parent'),
        checkpoint: queryText(query, 'checkpoint'),
        sweepFrom: /^\d+$/.test(sweep) ? Number(sweep) : null,
      };
    }
    case 'compare':
      return { name: 'compare', ids: (queryText(query, 'runs') ?? '').split(',').filter(Boolean) };
    case 'sweep':
      return { name: 'sweep', experimentId: Number(param('experimentId')) };
    case 'sweeps':
    case 'datasets':
    case 'checkpoints':
    case 'compute':
      return { name: location.name };
    default:
      return { name: 'runs' };
  }
}

/** The vue-router location of a typed route. */
export function locationOf(route: Route): RouteLocationRaw {
  switch (route.name) {
    case 'run':
      return { name: 'run', params: { id: route.id } };
    case 'sweep':
      return { name: 'sweep', params: { experimentId: String(route.experimentId) } };
    case 'compare':
      // The ids stay one comma-separated value, as `#/compare?runs=a,b` has always read.
      return { name: 'compare', query: route.ids.length > 0 ? { runs: route.ids.join(',') } : {} };
    case 'new': {
      const query: Record<string, string> = {};
      if (route.kind && route.kind !== 'pretrain') query.kind = route.kind;
      if (route.preset) query.preset = route.preset;
      if (route.from) query.from = route.from;
      if (route.parent) query.parent = route.parent;
      if (route.checkpoint) query.checkpoint = route.checkpoint;
      if (route.sweepFrom) query.sweep = String(route.sweepFrom);
      return { name: 'new', query };
    }
    default:
      return { name: route.name };
  }
}

export const router = createRouter({
  history: createWebHashHistory(),
  routes: [
    { path: '/runs', name: 'runs', component: () => import('./views/RunsView.vue') },
    { path: '/runs/:id', name: 'run', component: () => import('./views/RunView.vue'), props: true },
    {
      path: '/new',
      name: 'new',
      component: () => import('./views/NewRunView.vue'),
      props: (to) => {
        const route = routeOf(to);
        return route.name === 'new'
          ? {
              kind: route.kind ?? 'pretrain',
              preset: route.preset,
              from: route.from,
              parent: route.parent ?? null,
              checkpoint: route.checkpoint ?? null,
              sweepFrom: route.sweepFrom ?? null,
            }
          : {};
      },
    },
    {
      path: '/compare',
      name: 'compare',
      component: () => import('./views/CompareView.vue'),
      props: (to) => {
        const route = routeOf(to);
        return { ids: route.name === 'compare' ? route.ids : [] };
      },
    },
    { path: '/sweeps', name: 'sweeps', component: () => import('./views/SweepsView.vue') },
    {
      path: '/sweeps/:experimentId(\\d+)',
      name: 'sweep',
      component: () => import('./views/SweepView.vue'),
      props: (to) => ({ experimentId: Number(to.params.experimentId) }),
    },
    { path: '/sweeps/:other(.*)', redirect: '/sweeps' },
    { path: '/datasets', name: 'datasets', component: () => import('./views/DatasetsView.vue') },
    { path: '/checkpoints', name: 'checkpoints', component: () => import('./views/CheckpointsView.vue') },
    { path: '/compute', name: 'compute', component: () => import('./views/ComputeView.vue') },
    // `#/`, no hash, or an address from elsewhere: the runs, as the app opens.
    { path: '/:unknown(.*)*', name: 'home', component: () => import('./views/RunsView.vue') },
  ],
  // A page opens at its top, not where the previous one was scrolled to.
  scrollBehavior: () => ({ top: 0 }),
});

/** The current route, reactive. */
export const currentRoute = computed(() => routeOf(router.currentRoute.value));

/** The `#/…` address of a route, for links. */
export function routeHref(route: Route): string {
  return router.resolve(locationOf(route)).href;
}

/** Go to a route (a leave guard may keep the user where they are). */
export function navigate(route: Route): void {
  void router.push(locationOf(route));
}
