import { defineStore } from 'pinia';
import { ref } from 'vue';

export interface Notice {
  id: number;
  tone: 'error' | 'info';
  text: string;
}

/** Short messages in the corner: an action that failed, or one that did something not on screen. */
export const useNoticesStore = defineStore('notices', () => {
  const notices = ref<Notice[]>([]);
  let nextId = 1;

  function dismiss(id: number): void {
    notices.value = notices.value.filter((notice) => notice.id !== id);
  }

  function show(tone: Notice['tone'], text: string): void {
    const id = nextId++;
    notices.value = [...notices.value.slice(-4), { id, tone, text }];
    setTimeout(() => dismiss(id), tone === 'error' ? 10_000 : 4_000);
  }

  return { notices, show, dismiss };
});
