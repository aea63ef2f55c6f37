/**
 * The renderer's Content-Security-Policy, one string for the page's meta tag (Electron) and the
 * web server's header. ECharts and Vue transitions set inline styles, hence style-src 'unsafe-inline';
 * no inline or remote script is ever allowed.
 */
export const RENDERER_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
