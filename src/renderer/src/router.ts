import { computed, ref } from 'vue';

/**
 * A small hash router: `#/runs`, `#/runs/<id>`, `#/new` (optionally `?preset=<id>` or `?from=<run id>`),
 * `#/compute`. Hash routes work the same from Electron's file:// page and from the web server.
 */
export type Route =
  | { name: 'runs' }
  | { name: 'run'; id: string }
  | { name: 'new'; preset: string | null; from: string | null }
  | { name: 'compute' };

export function parseRoute(hash: string): Route {
  const [pathPart = '', queryPart = ''] = hash.replace(/^#/, '').split('?');
  const segments = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(queryPart);
  if (segments[0] === 'runs' && segments[1]) return { name: 'run', id: segments[1] };
  if (segments[0] === 'new') return { name: 'new', preset: query.get('preset'), from: query.get('from') };
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
    case 'new': {
      const query = new URLSearchParams();
      if (route.preset) query.set('preset', route.preset);
      if (route.from) query.set('from', route.from);
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
