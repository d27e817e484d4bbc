import { createApp } from 'vue';
import 'vant/es/toast/style';
import 'vant/es/dialog/style';
import 'vant/es/notify/style';
import App from './App.vue';
import { db, loadContext } from './app/context';
import { router } from './app/router';
import { registerServiceWorker } from './app/update';
import { startAutoSync } from './sync/engine';
import './ui/base.css';

async function start(): Promise<void> {
  await loadContext();
  const app = createApp(App);
  app.use(router);
  app.mount('#app');
  startAutoSync(db);
  registerServiceWorker();
}

void start();
