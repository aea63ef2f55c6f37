import { computed, ref } from 'vue';
import { JobKind } from '../../shared/engine-protocol';

/**
 * A small hash router: `#/runs`, `#/runs/<id>`, `#/new` (`?kind=`, `?preset=<id>`, `?from=<run id>` to
 * duplicate, `?parent=<run id>` to start from a run's checkpoint, `?checkpoint=<path>`, `?sweep=<id>` to start a sweep from a sweep's runs), `#/compare?runs=a,b`, `#/sweeps`, `#/sweeps/<experiment id>`,
 * `#/datasets`, `#/checkpoints`, `#/compute`. Hash routes work the same from Electron's file:// page and
 * from the web server.
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

export function parseRoute(hash: string): Route {
  const [pathPart = '', queryPart = ''] = hash.replace(/^#/, '').split('?');
  const segments = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(queryPart);
  if (segments[0] === 'runs' && segments[1]) return { name: 'run', id: segments[1] };
  if (segments[0] === 'new') {
    const kind = JobKind.safeParse(query.get('kind'));
    return {
      name: 'new',
      kind: kind.success ? kind.data : 'pretrain',
      preset: query.get('preset'),
      from: query.get('from'),
      parent: query.get('parent'),
      checkpoint: query.get('checkpoint'),
      sweepFrom: /^\d+$/.test(query.get('sweep') ?? '') ? Number(query.get('sweep')) : null,
    };
  }
  if (segments[0] === 'sweeps' && segments[1] && /^\d+$/.test(segments[1])) {
    return { name: 'sweep', experimentId: Number(segments[1]) };
  }
  if (segments[0] === 'sweeps') return { name: 'sweeps' };
  if (segments[0] === 'compare') {
    const ids = (query.get('runs') ?? '').split(',').filter(Boolean);
    return { name: 'compare', ids };
  }
  if (segments[0] === 'datasets') return { name: 'datasets' };
  if (segments[0] === 'checkpoints') return { name: 'checkpoints' };
  if (segments[0] === 'compute') return { name: 'compute' };
  return { name: 'runs' };
}

export function routeHref(route: Route): string {
  switch (route.name) {
    case 'runs':
      return '#/runs';
    case 'run':
      return `#/runs/${encodeURIComponent(route.id)}`;
    case 'compute':
      return '#/compute';
    case 'datasets':
      return '#/datasets';
    case 'checkpoints':
      return '#/checkpoints';
    case 'sweeps':
      return '#/sweeps';
    case 'sweep':
      return `#/sweeps/${route.experimentId}`;
    case 'compare':
      return `#/compare${route.ids.length > 0 ? `?runs=${route.ids.map(encodeURIComponent).join(',')}` : ''}`;
    case 'new': {
      const query = new URLSearchParams();
      if (route.kind && route.kind !== 'pretrain') query.set('kind', route.kind);
      if (route.preset) query.set('preset', route.preset);
      if (route.from) query.set('from', route.from);
      if (route.parent) query.set('parent', route.parent);
      if (route.checkpoint) query.set('checkpoint', route.checkpoint);
      if (route.sweepFrom) query.set('sweep', String(route.sweepFrom));
      const text = query.toString();
      return `#/new${text ? `?${text}` : ''}`;
    }
  }
}

const hash = ref(window.location.hash);
window.addEventListener('hashchange', () => {
  hash.value = window.location.hash;
});

/** The current route, reactive. */
export const currentRoute = computed(() => parseRoute(hash.value));

export function navigate(route: Route): void {
  const href = routeHref(route);
  if (window.location.hash !== href) window.location.hash = href;
}
