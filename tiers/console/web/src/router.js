// Routes. Every page but the login needs a session; a handling unit's
// seat and an inspector land on the terminal, everyone else on the seat.
import { createRouter, createWebHistory } from 'vue-router'
import { loggedIn, session } from './api.js'

const Login = () => import('./views/Login.vue')
const Screen = () => import('./views/Screen.vue')
const Seat = () => import('./views/Seat.vue')
const Intake = () => import('./views/Intake.vue')
const CaseView = () => import('./views/CaseView.vue')
const Evaluation = () => import('./views/Evaluation.vue')
const Terminal = () => import('./views/Terminal.vue')
const Reconcile = () => import('./views/Reconcile.vue')
const Review = () => import('./views/Review.vue')

export function home() {
  const role = session.principal && session.principal.role
  return role === 'ROLE_HANDLING_UNIT' || role === 'ROLE_INSPECTOR' ? '/m' : '/seat'
}

export const router = createRouter({
  history: createWebHistory('/'),
  routes: [
    { path: '/login', component: Login, meta: { public: true, title: '登录' } },
    { path: '/', redirect: () => home() },
    { path: '/screen', component: Screen, meta: { title: '指挥大屏', bare: true } },
    { path: '/seat', component: Seat, meta: { title: '工作台' } },
    { path: '/intake', component: Intake, meta: { title: '受理上报' } },
    { path: '/cases/:id', component: CaseView, props: true, meta: { title: '案件详情' } },
    { path: '/evaluation', component: Evaluation, meta: { title: '综合评价' } },
    { path: '/reconcile', component: Reconcile, meta: { title: '导入与对账' } },
    { path: '/review', component: Review, meta: { title: '会审' } },
    { path: '/m', component: Terminal, meta: { title: '城管通', bare: true } },
    { path: '/:rest(.*)*', redirect: '/' },
  ],
})

router.beforeEach((to) => {
  if (!to.meta.public && !loggedIn()) return { path: '/login', query: { next: to.fullPath } }
})

router.afterEach((to) => {
  document.title = `${to.meta.title || ''} · 数字城管`
})
