/** Display helpers shared by the screens. */

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${String(m % 60).padStart(2, '0')} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function formatDateTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  const date = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

export function formatTime(ms: number): string {
  return formatDateTime(ms).slice(11);
}

/** "12 s ago", "3 min ago", "yesterday 14:02" style, relative to `now`. */
export function formatRelative(ms: number | null | undefined, now: number): string {
  if (ms === null || ms === undefined) return '–';
  const seconds = Math.max(0, (now - ms) / 1000);
  if (seconds < 45) return 'just now';
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)} h ago`;
  if (seconds < 7 * 86_400) return `${Math.round(seconds / 86_400)} d ago`;
  return formatDateTime(ms).slice(0, 10);
}

/** A metric value: 4 significant digits, scientific notation when very small or large. */
export function formatMetric(value: number | null | undefined): string {
  if (value === null || value === undefined) return '–';
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude < 1e-3 || magnitude >= 1e6) return value.toExponential(3);
  return String(Number(value.toPrecision(4)));
}

/** Every digit the float has: for tooltips and the config. */
export function formatExact(value: number | null | undefined): string {
  if (value === null || value === undefined) return '–';
  return String(value);
}

export function formatRate(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

export function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}

// The renderer's views and stores take it from here, with the other formatting.
export { errorMessage } from '@shared/unknown-value';
