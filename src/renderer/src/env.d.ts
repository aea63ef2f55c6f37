/// <reference types="vite/client" />
import type { ApiTransport } from '@shared/api';

declare global {
  interface Window {
    /** Set by the Electron preload; absent in web mode. */
    mimir?: ApiTransport;
  }
}

declare module '*.vue' {
  import type { DefineComponent } from 'vue';
  const component: DefineComponent<object, object, unknown>;
  export default component;
}
