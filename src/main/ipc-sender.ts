import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the app's own page comes from: the built index.html, or the dev server in `electron-vite dev`. */
export type AppPage = { file: string } | { devServer: string };

/** The frame an IPC call came from, as Electron's event.senderFrame describes it (null once it is gone). */
export interface SenderFrame {
  url: string;
  /** The window's top frame, not an iframe inside it. */
  isMainFrame: boolean;
}

/**
 * Whether an IPC call comes from the app's own page (as VS Code's validated IPC checks each sender):
 * the top frame of the window, showing the built index.html (any route after `#`) or, in development,
 * a page of the dev server's origin. Anything else (an iframe, a page navigated elsewhere) is refused.
 */
export function isAppSender(frame: SenderFrame | null, page: AppPage): boolean {
  if (!frame?.isMainFrame) return false;
  let url: URL;
  try {
    url = new URL(frame.url);
  } catch {
    return false;
  }
  if ('devServer' in page) return url.origin === new URL(page.devServer).origin;
  if (url.protocol !== 'file:' || url.host !== '') return false;
  url.hash = '';
  url.search = '';
  return path.resolve(fileURLToPath(url)) === path.resolve(page.file);
}
