// The console's only way to the node: the REST gateway under /v1/, with
// the bearer token of AuthService's login kept in sessionStorage (one
// login per tab; closing the tab forgets it). Errors come back as
// ApiError with the REST error body ({error: {code, message, field}}).
import { reactive } from 'vue'

const KEY = 'cityhub.session'

function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || '{}') || {}
  } catch {
    return {}
  }
}

// session: token, refresh, expiresAt (ms), principal ({id, name, role, unit, grids, permissions}).
export const session = reactive(loadSession())

function saveSession() {
  sessionStorage.setItem(KEY, JSON.stringify(session))
}

function setTokens(t) {
  session.token = t.access_token
  session.refresh = t.refresh_token || session.refresh
  session.expiresAt = t.expires_at ? Date.parse(t.expires_at) : Date.now() + 10 * 60e3
  if (t.principal) session.principal = t.principal
  saveSession()
}

export function loggedIn() {
  return !!session.token
}

export function clearSession() {
  for (const k of Object.keys(session)) delete session[k]
  sessionStorage.removeItem(KEY)
}

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {}
    super(e.message || `HTTP ${status}`)
    this.status = status
    this.code = e.code || ''
    this.field = e.field || ''
    this.body = body
  }
}

// NetworkError: the request did not reach the node (no signal): the
// terminal queues such writes.
export class NetworkError extends Error {}

export async function login(username, password) {
  const r = await fetch('/v1/auth/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  })
  const body = await r.json().catch(() => null)
  if (!r.ok) throw new ApiError(r.status, body)
  setTokens(body)
  return body.principal
}

export async function logout() {
  try {
    if (session.refresh) await api('/v1/auth/logout', { method: 'POST', body: { refresh_token: session.refresh } })
  } catch {
    /* the session ends here whatever the node says */
  }
  clearSession()
}

let refreshing = null

async function refreshToken() {
  if (!session.refresh) throw new ApiError(401, { error: { message: '登录已过期，请重新登录' } })
  if (!refreshing) {
    refreshing = (async () => {
      const r = await fetch('/v1/auth/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: session.refresh }),
      })
      const body = await r.json().catch(() => null)
      if (!r.ok) {
        clearSession()
        throw new ApiError(r.status, body)
      }
      setTokens(body)
    })().finally(() => {
      refreshing = null
    })
  }
  return refreshing
}

// token returns a bearer token good for the next minute.
export async function token() {
  if (session.token && session.expiresAt && session.expiresAt - Date.now() < 60e3) {
    await refreshToken()
  }
  return session.token
}

function url(path, query) {
  if (!query) return path
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '' || v === false) continue
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x))
    else q.append(k, String(v))
  }
  const s = q.toString()
  return s ? `${path}?${s}` : path
}

// api calls the REST gateway. body: an object (JSON) or a Blob/File (sent
// as is). raw: return the Response (downloads).
export async function api(path, { method = 'GET', query, body, raw = false, headers = {} } = {}) {
  const send = async () => {
    const h = { ...headers, Authorization: `Bearer ${await token()}` }
    let b = body
    if (body !== undefined && !(body instanceof Blob)) {
      h['Content-Type'] = 'application/json'
      b = JSON.stringify(body)
    }
    try {
      return await fetch(url(path, query), { method, headers: h, body: b })
    } catch (e) {
      throw new NetworkError(String(e))
    }
  }
  let r = await send()
  if (r.status === 401 && session.refresh) {
    await refreshToken()
    r = await send()
  }
  if (raw && r.ok) return r
  const data = await r.json().catch(() => null)
  if (!r.ok) throw new ApiError(r.status, data)
  return data
}

// requestId is a fresh idempotency key (every write carries one; a retry
// or a replay from the offline queue sends the same one).
export function requestId(prefix = 'web') {
  const b = new Uint8Array(12)
  crypto.getRandomValues(b)
  return `${prefix}-${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')}`
}

// listAll reads every page of ListCases (up to max cases).
export async function listAll(query, max = 20000) {
  const out = []
  let page = ''
  do {
    const r = await api('/v1/cases', { query: { ...query, page_size: 500, page_token: page } })
    out.push(...(r.cases || []))
    page = r.next_page_token || ''
  } while (page && out.length < max)
  return out
}

// download saves a file the API serves (it needs the bearer token, so a
// plain link would not do).
export async function download(path, query, filename) {
  const r = await api(path, { query, raw: true })
  const blob = await r.blob()
  const a = document.createElement('a')
  a.href = URL.createObjectURL(blob)
  a.download = filename
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(a.href), 10e3)
}

// evidenceURL returns an object URL of a case's photo (cached).
const photoCache = new Map()
export async function evidenceURL(caseId, sha) {
  const k = `${caseId}/${sha}`
  if (!photoCache.has(k)) {
    photoCache.set(
      k,
      api(`/v1/evidence/${encodeURIComponent(caseId)}/${sha}`, { raw: true })
        .then((r) => r.blob())
        .then((b) => URL.createObjectURL(b))
        .catch((e) => {
          photoCache.delete(k)
          throw e
        }),
    )
  }
  return photoCache.get(k)
}

// uploadEvidence posts a photo to a case; it answers the stored reference
// (sha256 …).
export function uploadEvidence(caseId, file, { rid, stage = 'handling', kind = 'after', note = '' } = {}) {
  return api(`/v1/evidence/${encodeURIComponent(caseId)}`, {
    method: 'POST',
    query: { request_id: rid, stage, kind, file_name: file.name || 'photo.jpg', note },
    body: file,
    headers: { 'Content-Type': file.type || 'application/octet-stream' },
  })
}

// watch follows the change feed (SSE at /v1/cases:watch) with fetch, since
// EventSource cannot send the bearer token. The changes come without the
// case (include_case costs a whole case per change: a flood of them, the
// sweeper marking a backlog overdue, would keep a page parsing for
// seconds); a page reads the cases it shows. Previously: since
// EventSource cannot send the bearer token. It reconnects after a drop from
// the last event id (every change once, in order); a position the node no
// longer keeps (410) calls onReset, which re-lists. Returns stop().
export function watch(query, { onChange, onHeartbeat, onState, onReset }) {
  let stopped = false
  let last = ''
  let ctl = null
  const run = async () => {
    while (!stopped) {
      ctl = new AbortController()
      try {
        const h = { Authorization: `Bearer ${await token()}`, Accept: 'text/event-stream' }
        if (last) h['Last-Event-ID'] = last
        const r = await fetch(url('/v1/cases:watch', query), { headers: h, signal: ctl.signal })
        if (r.status === 410) {
          last = ''
          onReset && (await onReset())
          continue
        }
        if (r.status === 401 && session.refresh) {
          await refreshToken()
          continue
        }
        if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`)
        onState && onState('live')
        const reader = r.body.getReader()
        const dec = new TextDecoder()
        let buf = ''
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          buf += dec.decode(value, { stream: true })
          let i
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i)
            buf = buf.slice(i + 2)
            let ev = 'message'
            let id = ''
            let data = ''
            for (const line of block.split('\n')) {
              if (line.startsWith('event:')) ev = line.slice(6).trim()
              else if (line.startsWith('id:')) id = line.slice(3).trim()
              else if (line.startsWith('data:')) data += line.slice(5).trim()
            }
            if (id) last = id
            if (!data) continue
            const msg = JSON.parse(data)
            if (ev === 'change') onChange(msg)
            else if (ev === 'heartbeat') onHeartbeat && onHeartbeat(msg)
            else if (ev === 'error') {
              if (msg.error && msg.error.http_status === 410) {
                last = ''
                onReset && (await onReset())
              }
            }
          }
        }
      } catch (e) {
        if (stopped) return
      }
      if (stopped) return
      onState && onState('reconnecting')
      await new Promise((res) => setTimeout(res, 2000))
    }
  }
  run()
  return () => {
    stopped = true
    if (ctl) ctl.abort()
  }
}

// can reports whether the logged-in principal holds a permission
// ("case.act.ACTION_DISPATCH", "evaluation.read", …).
export function can(perm) {
  const ps = (session.principal && session.principal.permissions) || []
  return ps.some((p) => p.split('@')[0] === perm)
}
