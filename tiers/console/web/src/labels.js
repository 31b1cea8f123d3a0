// Chinese names of the API's enums (DOMAIN.md), and formatting helpers.

export const STATES = {
  STATE_REPORTED: '已上报',
  STATE_VERIFIED: '已核实',
  STATE_FILED: '已立案',
  STATE_NOT_FILED: '不予立案',
  STATE_DISPATCHED: '已派遣',
  STATE_ACCEPTED: '处置中',
  STATE_RETURN_REQUESTED: '申请回退',
  STATE_HANDLED: '已处置',
  STATE_CHECKED: '已核查',
  STATE_CLOSED: '已结案',
  STATE_SUSPENDED: '挂账',
  STATE_VOIDED: '已作废',
}

// Colours of the states on the map and in badges (readable on the dark
// wall screen and on white).
export const STATE_COLORS = {
  STATE_REPORTED: '#4fc3f7',
  STATE_VERIFIED: '#29b6f6',
  STATE_FILED: '#ffca28',
  STATE_NOT_FILED: '#90a4ae',
  STATE_DISPATCHED: '#ffa726',
  STATE_ACCEPTED: '#ab47bc',
  STATE_RETURN_REQUESTED: '#ef5350',
  STATE_HANDLED: '#26a69a',
  STATE_CHECKED: '#66bb6a',
  STATE_CLOSED: '#9ccc65',
  STATE_SUSPENDED: '#8d6e63',
  STATE_VOIDED: '#78909c',
}

export const OPEN_STATES = [
  'STATE_REPORTED',
  'STATE_VERIFIED',
  'STATE_FILED',
  'STATE_DISPATCHED',
  'STATE_ACCEPTED',
  'STATE_RETURN_REQUESTED',
  'STATE_HANDLED',
  'STATE_CHECKED',
  'STATE_SUSPENDED',
]

export function isOpen(state) {
  return OPEN_STATES.includes(state)
}

export const ACTIONS = {
  ACTION_REPORT: '上报',
  ACTION_VERIFY: '核实',
  ACTION_FILE: '立案',
  ACTION_REJECT: '不予立案',
  ACTION_SELF_HANDLE: '自处理',
  ACTION_DISPATCH: '派遣',
  ACTION_ACCEPT: '签收',
  ACTION_REQUEST_RETURN: '申请回退',
  ACTION_APPROVE_RETURN: '批准回退',
  ACTION_DENY_RETURN: '驳回回退',
  ACTION_HANDLE: '处置反馈',
  ACTION_CHECK_PASS: '核查通过',
  ACTION_CHECK_FAIL: '核查不通过',
  ACTION_CLOSE: '结案',
  ACTION_REQUEST_EXTENSION: '申请延期',
  ACTION_APPROVE_EXTENSION: '批准延期',
  ACTION_DENY_EXTENSION: '驳回延期',
  ACTION_REQUEST_SUSPEND: '申请挂账',
  ACTION_APPROVE_SUSPEND: '批准挂账',
  ACTION_DENY_SUSPEND: '驳回挂账',
  ACTION_RESUME: '恢复',
  ACTION_VOID: '作废',
  ACTION_SUPERVISE: '督办',
  ACTION_TRANSFER_UP: '上交',
  ACTION_REASSIGN: '改派',
  ACTION_REFER_REVIEW: '提请会诊',
  ACTION_DECIDE_OWNER: '会诊裁定',
  ACTION_HAND_DOWN: '下派',
}

// The REST verb of each action (POST /v1/cases/{id}:verb).
export const VERBS = {
  ACTION_VERIFY: 'verify',
  ACTION_FILE: 'file',
  ACTION_REJECT: 'reject',
  ACTION_SELF_HANDLE: 'selfHandle',
  ACTION_DISPATCH: 'dispatch',
  ACTION_ACCEPT: 'accept',
  ACTION_REQUEST_RETURN: 'requestReturn',
  ACTION_APPROVE_RETURN: 'approveReturn',
  ACTION_DENY_RETURN: 'denyReturn',
  ACTION_HANDLE: 'handle',
  ACTION_CHECK_PASS: 'checkPass',
  ACTION_CHECK_FAIL: 'checkFail',
  ACTION_CLOSE: 'close',
  ACTION_REQUEST_EXTENSION: 'requestExtension',
  ACTION_APPROVE_EXTENSION: 'approveExtension',
  ACTION_DENY_EXTENSION: 'denyExtension',
  ACTION_REQUEST_SUSPEND: 'requestSuspend',
  ACTION_APPROVE_SUSPEND: 'approveSuspend',
  ACTION_DENY_SUSPEND: 'denySuspend',
  ACTION_RESUME: 'resume',
  ACTION_VOID: 'void',
  ACTION_SUPERVISE: 'supervise',
  ACTION_TRANSFER_UP: 'transferUp',
  ACTION_REASSIGN: 'reassign',
  ACTION_REFER_REVIEW: 'referReview',
  ACTION_DECIDE_OWNER: 'decideOwner',
}

// Actions whose request must say why.
export const NEEDS_NOTE = [
  'ACTION_REJECT',
  'ACTION_REQUEST_RETURN',
  'ACTION_DENY_RETURN',
  'ACTION_CHECK_FAIL',
  'ACTION_REQUEST_SUSPEND',
  'ACTION_VOID',
  'ACTION_TRANSFER_UP',
  'ACTION_REASSIGN',
  'ACTION_REFER_REVIEW',
  'ACTION_DECIDE_OWNER',
  'ACTION_REQUEST_EXTENSION',
]

// Actions that name a unit.
export const NEEDS_UNIT = ['ACTION_DISPATCH', 'ACTION_REASSIGN', 'ACTION_DECIDE_OWNER']

export const ROLES = {
  ROLE_INSPECTOR: '监督员',
  ROLE_INTAKE_CLERK: '受理员',
  ROLE_CITIZEN: '市民',
  ROLE_SYSTEM: '系统',
  ROLE_SHIFT_LEADER: '值班长',
  ROLE_DISPATCHER: '派遣员',
  ROLE_HANDLING_UNIT: '处置单位',
  ROLE_SUPERVISOR: '督办员',
  ROLE_EVALUATOR: '考评员',
  ROLE_ADMIN: '管理员',
}

export const SOURCES = {
  SOURCE_INSPECTOR: '监督员上报',
  SOURCE_HOTLINE_12345: '12345 热线',
  SOURCE_HOTLINE_12319: '12319 热线',
  SOURCE_APP: '市民通',
  SOURCE_CAMERA: '视频分析',
  SOURCE_LEADER: '领导交办',
  SOURCE_MEDIA: '媒体曝光',
}

export const TIERS = {
  TIER_CITY: '市级',
  TIER_DISTRICT: '区级',
  TIER_STREET: '街道',
  TIER_COMMUNITY: '社区',
}

export const KINDS = { KIND_COMPONENT: '部件', KIND_EVENT: '事件' }

export function fmtTime(ts) {
  if (!ts) return ''
  const d = new Date(ts)
  if (isNaN(d)) return ''
  const p = (n) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`
}

// WORK_NOTE and WALL_CLOCK_NOTE say what a time left counts. The leader
// stamps a case's deadlines from the working calendar (working hours,
// workdays, holidays); a case read from the API carries the working time
// left to its stage deadline as the node computed it on that calendar
// (working_time_left), shown as is. Where a case has no such field (feed
// changes, a node without a calendar) the console, which does not hold
// the calendar, falls back to wall-clock time and labels it so.
export const WORK_NOTE = '按工作时间计算：由节点的工作日历（工作时段、节假日）算出，截至本次读取'
export const WALL_CLOCK_NOTE = '按自然时间计算：时限由工作日历（工作时段、节假日）确定，但此处剩余时间含非工作时段'

function fmtLeft(ms) {
  const over = ms < 0
  ms = Math.abs(ms)
  const m = Math.floor(ms / 60e3)
  const d = Math.floor(m / 1440)
  const h = Math.floor((m % 1440) / 60)
  const mm = m % 60
  const s = d > 0 ? `${d}天${h}小时` : h > 0 ? `${h}小时${mm}分` : `${mm}分`
  return { text: over ? `超时 ${s}` : `剩余 ${s}`, over }
}

// timeLeft: "剩余 3小时20分" or "超时 1天2小时" to a deadline (wall clock).
export function timeLeft(ts, now = Date.now()) {
  if (!ts) return { text: '无时限', over: false }
  return fmtLeft(Date.parse(ts) - now)
}

// workLeft: a case's time left in working hours when the node gave it
// (label 工作时间), else wall-clock time to its stage deadline (自然时间).
export function workLeft(c, now = Date.now()) {
  const w = c && c.working_time_left
  if (typeof w === 'string' && !isNaN(parseFloat(w))) {
    return { ...fmtLeft(parseFloat(w) * 1000), work: true, label: '工作时间', note: WORK_NOTE }
  }
  return { ...timeLeft(c && c.stage_deadline, now), work: false, label: '自然时间', note: WALL_CLOCK_NOTE }
}

export function isToday(ts, now = new Date()) {
  if (!ts) return false
  const d = new Date(ts)
  return d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate()
}

// className names a case's class from the catalogue (or its codes).
export function className(cat, c) {
  if (!c) return ''
  const k = `${c.kind}/${c.major_code}/${c.minor_code}`
  const cl = cat && cat.get(k)
  return cl ? `${cl.major_name}·${cl.name}` : `${KINDS[c.kind] || ''} ${c.major_code || ''}${c.minor_code || ''}`
}
