// The class catalogue (GetCatalogue), read once per page load, with the
// federation's unit directory (id → name, node, tier).
import { api } from './api.js'

let cached = null

export function catalogue() {
  if (!cached) {
    cached = api('/v1/catalogue')
      .then((c) => {
        const m = new Map()
        for (const cl of c.classes || []) m.set(`${cl.kind}/${cl.major_code}/${cl.minor_code}`, cl)
        m.list = c.classes || []
        m.units = new Map((c.units || []).map((u) => [u.id, u]))
        return m
      })
      .catch((e) => {
        cached = null
        throw e
      })
  }
  return cached
}

// unitName is the name of a unit id in the directory of cat (the loaded
// catalogue; null while loading): the id itself when the directory does
// not know it (a node outside a federation, a unit since removed).
export function unitName(cat, id) {
  if (!id) return ''
  const u = cat && cat.units && cat.units.get(id)
  return (u && u.name) || id
}

// units lists the directory's units (empty while loading).
export function units(cat) {
  return cat && cat.units ? [...cat.units.values()] : []
}
