/**
 * Live upload progress for the screens (bytes the server acknowledged, by upload key). Small
 * and free of the queue itself, so the first screen does not load the upload code.
 */
import { reactive } from 'vue';

export const uploadProgress = reactive<Record<string, number>>({});
