import { api } from '../api/client';
import { usePreviewsStore } from './previews';
import { useRunDetailsStore } from './run-details';
import { useRunsStore } from './runs';

/** One subscription to the app's pushes for the whole renderer, handed to the stores that care. */
export function startLiveUpdates(): () => void {
  const runs = useRunsStore();
  const details = useRunDetailsStore();
  const previews = usePreviewsStore();
  return api.onPush((message) => {
    runs.applyPush(message);
    details.applyPush(message);
    previews.applyPush(message);
  });
}
