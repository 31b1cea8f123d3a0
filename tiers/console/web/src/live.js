// useLiveCases keeps a Map of the node's cases in step with the change
// feed: the watch starts first (from now), then the list is read, and
// every copy — listed or changed — replaces the one held only when its
// version is newer, so no change between the two is lost and none goes
// backwards. A position the node no longer keeps (410) re-lists.
import { onBeforeUnmount, ref, shallowRef } from 'vue'
import { api, listAll, watch } from './api.js'

// states, when given, lists only those states (one query each, max cases
// in all): the 大屏 draws the open cases; its numbers come from the
// dashboard's counters, not from the list.
export function useLiveCases(query = {}, { max = 20000, states = null } = {}) {
  const cases = shallowRef(new Map())
  const tick = ref(0) // bumped on every change (views redraw from it)
  const status = ref('connecting') // live, reconnecting
  const revision = ref('')
  const loading = ref(true)
  const error = ref('')
  const recent = ref([]) // the last changes, newest first
  const listeners = new Set()

  // At most max cases are held: past it, a change to a case not held
  // shows in the recent changes only (a flood of changes, say the sweeper
  // marking a whole backlog overdue, must not grow the page without bound).
  function put(c) {
    const m = cases.value
    const old = m.get(c.id)
    if (!old && m.size >= max) return false
    if (old && Number(old.version || 0) > Number(c.version || 0)) return false
    m.set(c.id, c)
    return true
  }

  async function relist() {
    loading.value = true
    try {
      if (states) {
        let left = max
        for (const st of states) {
          if (left <= 0) break
          const list = await listAll({ ...query, state: st }, left)
          for (const c of list) put(c)
          left -= list.length
        }
      } else {
        for (const c of await listAll(query, max)) put(c)
      }
      error.value = ''
    } catch (e) {
      error.value = e.message
    } finally {
      loading.value = false
      tick.value++
    }
  }

  // Cases the feed names that the page does not hold yet are read one by
  // one (a few at a time, at most 200 waiting; past that they show in the
  // recent changes only, until the next re-list).
  const wanted = new Set()
  let fetching = 0
  function fetchSome() {
    while (fetching < 4 && wanted.size) {
      const id = wanted.values().next().value
      wanted.delete(id)
      fetching++
      api(`/v1/cases/${encodeURIComponent(id)}`, { query: { consistency: 'CONSISTENCY_STALE' } })
        .then((c) => {
          if (put(c)) tick.value++
        })
        .catch(() => {})
        .finally(() => {
          fetching--
          fetchSome()
        })
    }
  }

  const stop = watch(query, {
    onChange(ch) {
      revision.value = ch.revision
      const m = cases.value
      const old = m.get(ch.case_id)
      if (ch.kind === 'CHANGE_KIND_REMOVED') {
        m.delete(ch.case_id)
      } else if (old) {
        if (Number(ch.version || 0) > Number(old.version || 0)) {
          m.set(ch.case_id, { ...old, version: ch.version, state: ch.state, overdue: !!ch.overdue, holder: ch.holder, owner_unit: ch.owner_unit, grid_code: ch.grid_code || old.grid_code })
        }
      } else if (m.size + wanted.size < max && wanted.size < 200) {
        wanted.add(ch.case_id)
        fetchSome()
      }
      recent.value = [ch, ...recent.value].slice(0, 30)
      for (const f of listeners) f(ch)
      tick.value++
    },
    onHeartbeat(hb) {
      if (hb.revision) revision.value = hb.revision
    },
    onState(s) {
      status.value = s
    },
    onReset: relist,
  })
  relist()
  onBeforeUnmount(stop)
  return { cases, tick, status, revision, loading, error, recent, relist, onChange: (f) => listeners.add(f) }
}
