// The terminal's outbox: every write of the handheld terminal is queued in
// IndexedDB first (photos as Blobs), then sent in order. Without signal the
// steps stay queued and are sent when the network comes back, with the
// request ids they were given when the work was done, so a step that had
// reached the node before the signal dropped is answered as a replay and
// nothing is done twice. A handling step that names a photo takes the
// photo's SHA-256 from the upload's answer, which is kept by request id.
import { openDB } from 'idb'
import { ref } from 'vue'
import { ApiError, NetworkError, api, uploadEvidence } from './api.js'

const dbp = openDB('cityhub-terminal', 1, {
  upgrade(db) {
    db.createObjectStore('ops', { keyPath: 'seq', autoIncrement: true })
    db.createObjectStore('results', { keyPath: 'rid' })
  },
})

export const queued = ref(0)
export const lastError = ref('')
export const sending = ref(false)

async function count() {
  queued.value = await (await dbp).count('ops')
}
count()

// enqueue adds steps: {type: 'upload', rid, caseId, file, stage, kind} or
// {type: 'act', rid, caseId, verb, body, evidenceFrom: [upload rids]}.
export async function enqueue(...steps) {
  const db = await dbp
  const tx = db.transaction('ops', 'readwrite')
  for (const s of steps) await tx.store.add({ ...s, queuedAt: Date.now() })
  await tx.done
  await count()
}

let running = null

// flush sends the queued steps in order; it stops at the first step that
// cannot reach the node (and leaves it queued). A step the node refuses is
// dropped with its error shown: sending it again would be refused again.
export function flush() {
  if (!running) {
    running = (async () => {
      sending.value = true
      const db = await dbp
      try {
        for (;;) {
          const cur = await db.transaction('ops').store.openCursor()
          if (!cur) break
          const op = cur.value
          try {
            if (op.type === 'upload') {
              const r = await uploadEvidence(op.caseId, op.file, { rid: op.rid, stage: op.stage, kind: op.kind })
              await db.put('results', { rid: op.rid, sha256: r.evidence && r.evidence.sha256 })
            } else {
              const body = { ...op.body, request_id: op.rid }
              if (op.evidenceFrom && op.evidenceFrom.length) {
                body.evidence = []
                for (const rid of op.evidenceFrom) {
                  const res = await db.get('results', rid)
                  if (res && res.sha256) body.evidence.push(res.sha256)
                }
              }
              await api(`/v1/cases/${encodeURIComponent(op.caseId)}:${op.verb}`, { method: 'POST', body })
            }
            lastError.value = ''
          } catch (e) {
            if (e instanceof NetworkError || (e instanceof ApiError && (e.status >= 500 || e.status === 429))) {
              lastError.value = '无网络或节点忙，稍后自动重发'
              break
            }
            lastError.value = `${op.caseId}：${e.message}`
          }
          await db.delete('ops', op.seq)
          await count()
        }
      } finally {
        sending.value = false
        running = null
        await count()
      }
    })()
  }
  return running
}

if (typeof window !== 'undefined') {
  window.addEventListener('online', () => flush())
  setInterval(() => {
    if (queued.value > 0) flush()
  }, 15000)
}
