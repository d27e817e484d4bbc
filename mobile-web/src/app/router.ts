import { createRouter, createWebHashHistory, type RouteRecordRaw } from 'vue-router';
import { session } from './context';

const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('../views/LoginView.vue') },
  { path: '/', name: 'mines', component: () => import('../views/MinesView.vue') },
  { path: '/mine/:id', name: 'mine', component: () => import('../views/MineView.vue'), props: true },
  {
    path: '/record/:id',
    name: 'record',
    component: () => import('../views/RecordView.vue'),
    props: true,
  },
  { path: '/letters', name: 'letters', component: () => import('../views/LettersView.vue') },
  { path: '/letter/:id', name: 'letter', component: () => import('../views/LetterView.vue'), props: true },
  { path: '/todo', name: 'todo', component: () => import('../views/TodoView.vue') },
  { path: '/settings', name: 'settings', component: () => import('../views/SettingsView.vue') },
  { path: '/:rest(.*)*', redirect: '/' },
];

export const router = createRouter({ history: createWebHashHistory(), routes });

router.beforeEach((to) => {
  if (!session.user && to.name !== 'login') return { name: 'login' };
  // A signed-in user comes back to the login page only to renew an expired session.
  if (session.user && to.name === 'login' && to.query['relogin'] === undefined) return { name: 'mines' };
  return true;
});
