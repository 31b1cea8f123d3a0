// The class catalogue (GetCatalogue), read once per page load.
import { api } from './api.js'

let cached = null

export function catalogue() {
  if (!cached) {
    cached = api('/v1/catalogue')
      .then((c) => {
        const m = new Map()
        for (const cl of c.classes || []) m.set(`${cl.kind}/${cl.major_code}/${cl.minor_code}`, cl)
        m.list = c.classes || []
        return m
      })
      .catch((e) => {
        cached = null
        throw e
      })
  }
  return cached
}
