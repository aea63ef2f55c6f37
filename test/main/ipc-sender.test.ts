import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isAppSender } from '../../src/main/ipc-sender';

const file = '/opt/MIMIR Workbench/resources/app/out/renderer/index.html';
const page = { file };
const own = pathToFileURL(file).href;

describe('the IPC handler accepts calls from the app’s own page only', () => {
  it('accepts the top frame of the built page, on any route', () => {
    expect(isAppSender({ url: own, isMainFrame: true }, page)).toBe(true);
    expect(isAppSender({ url: `${own}#/runs/abc`, isMainFrame: true }, page)).toBe(true);
  });

  it('refuses another page, another file, an iframe, a frame that is gone and a malformed URL', () => {
    for (const url of [
      'https://evil.example/index.html',
      'file:///tmp/index.html',
      pathToFileURL('/opt/MIMIR Workbench/resources/app/out/renderer/other.html').href,
      'file://remote-host/opt/MIMIR%20Workbench/resources/app/out/renderer/index.html',
      'about:blank',
      'data:text/html,<script>mimir.call()</script>',
      'not a url',
    ]) {
      expect(isAppSender({ url, isMainFrame: true }, page), url).toBe(false);
    }
    expect(isAppSender({ url: own, isMainFrame: false }, page)).toBe(false);
    expect(isAppSender(null, page)).toBe(false);
  });

  it('in development, accepts the dev server’s origin and nothing else', () => {
    const dev = { devServer: 'http://localhost:5173' };
    expect(isAppSender({ url: 'http://localhost:5173/#/runs', isMainFrame: true }, dev)).toBe(true);
    expect(isAppSender({ url: 'http://localhost:5174/', isMainFrame: true }, dev)).toBe(false);
    expect(isAppSender({ url: own, isMainFrame: true }, dev)).toBe(false);
  });
});
