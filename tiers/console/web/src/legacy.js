// Reading an old system's export in the browser for ImportCases (POST
// /v1/import): the same columns, Chinese header aliases and encodings as
// `cityhubctl import` (tiers/legacy). The node validates every row; here a
// file only becomes LegacyRow objects numbered by their line in the file.
import Papa from 'papaparse'

export const COLUMNS = [
  'legacy_id', 'reported_at', 'source', 'kind', 'major', 'minor', 'grid_code',
  'component_id', 'lat', 'lng', 'address', 'description', 'status',
  'dispatched_unit', 'deadline',
]
const REQUIRED = ['legacy_id', 'reported_at', 'source', 'kind', 'major', 'minor', 'grid_code', 'description', 'status']
// The quarantine file's own columns: a corrected quarantine file imports as it stands.
const QUARANTINE = ['line', 'field', 'reason']

// ALIASES: tiers/legacy/mapping.go Aliases.
const ALIASES = {
  案件编号: 'legacy_id', 案卷编号: 'legacy_id', 案卷号: 'legacy_id', 案件号: 'legacy_id',
  上报时间: 'reported_at', 发现时间: 'reported_at',
  问题来源: 'source', 案件来源: 'source', 来源: 'source',
  案件类型: 'kind', 问题类型: 'kind',
  大类: 'major', 大类代码: 'major', 大类编码: 'major',
  小类: 'minor', 小类代码: 'minor', 小类编码: 'minor',
  单元网格: 'grid_code', 网格编码: 'grid_code', 网格编号: 'grid_code', 网格号: 'grid_code',
  部件编号: 'component_id', 部件标识码: 'component_id', 部件编码: 'component_id',
  纬度: 'lat', 经度: 'lng',
  地址: 'address', 发生地址: 'address', 问题地址: 'address', 事发地址: 'address',
  问题描述: 'description', 案件描述: 'description', 描述: 'description',
  状态: 'status', 案件状态: 'status', 案卷状态: 'status',
  处置单位: 'dispatched_unit', 责任单位: 'dispatched_unit', 派遣单位: 'dispatched_unit',
  处置时限: 'deadline', 截止时间: 'deadline', 处置截止时间: 'deadline',
}

// decode reads the file's bytes as UTF-8 (a BOM is dropped) or, when they
// are not valid UTF-8, as GB18030 (what Excel on Chinese Windows saves).
export function decode(buf) {
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(buf), encoding: 'utf-8' }
  } catch {
    return { text: new TextDecoder('gb18030').decode(buf), encoding: 'gb18030' }
  }
}

// parseMapping reads "OLD=column" pairs (comma, 、 or line separated), as
// cityhubctl import --map; a column that is not one throws.
export function parseMapping(text) {
  const m = {}
  for (const part of String(text || '').split(/[,，、\n]/)) {
    if (!part.trim()) continue
    const i = part.indexOf('=')
    const old = i < 0 ? '' : part.slice(0, i).trim()
    const col = i < 0 ? '' : part.slice(i + 1).trim().toLowerCase()
    if (!old || !COLUMNS.includes(col)) throw new Error(`列映射 “${part.trim()}”：应为 原列名=列名，列名为 ${COLUMNS.join('、')} 之一`)
    m[old] = col
  }
  return m
}

function columnOf(h, mapping = {}) {
  const k = String(h).trim()
  const l = k.toLowerCase()
  if (mapping[k]) return mapping[k]
  if (COLUMNS.includes(l)) return l
  if (QUARANTINE.includes(l)) return ''
  return ALIASES[k] || null
}

function str(v) {
  if (v === undefined || v === null) return ''
  return typeof v === 'string' ? v : String(v)
}

// parse returns {rows, bad, ignored, encoding}; mapping: parseMapping's; bad: lines that could not be
// read ({line, legacy_id, field, reason}, as the node's RowError). A header
// without a required column, or with one twice, throws.
export function parse(buf, name, mapping = {}) {
  const { text, encoding } = decode(buf)
  const jsonl = /\.(jsonl|ndjson|json)$/i.test(name) || /^\s*\{/.test(text)
  const rows = []
  const bad = []
  const ignored = new Set()
  if (jsonl) {
    text.split(/\r?\n/).forEach((line, i) => {
      if (!line.trim()) return
      let o
      try {
        o = JSON.parse(line)
      } catch (e) {
        bad.push({ line: i + 1, legacy_id: '', field: 'row', reason: `不是有效的 JSON：${e.message}` })
        return
      }
      if (!o || typeof o !== 'object' || Array.isArray(o)) {
        bad.push({ line: i + 1, legacy_id: '', field: 'row', reason: '每行应为一个 JSON 对象' })
        return
      }
      const r = { line: i + 1 }
      for (const [k, v] of Object.entries(o)) {
        const c = columnOf(k, mapping)
        if (c) r[c] = str(v)
        else if (c === null) ignored.add(k)
      }
      rows.push(r)
    })
    return { rows, bad, ignored: [...ignored], encoding, format: 'jsonl' }
  }
  const res = Papa.parse(text.replace(/^\uFEFF/, ''), { skipEmptyLines: false })
  const data = res.data
  if (!data.length) throw new Error('文件为空')
  const header = data[0]
  const cols = header.map((h) => columnOf(h, mapping))
  header.forEach((h, i) => cols[i] === null && String(h).trim() && ignored.add(String(h).trim()))
  const seen = new Set()
  for (const c of cols) {
    if (!c) continue
    if (seen.has(c)) throw new Error(`表头：列 ${c} 出现了两次`)
    seen.add(c)
  }
  const missing = REQUIRED.filter((c) => !seen.has(c))
  if (missing.length) throw new Error(`表头缺少必填列：${missing.join('、')}`)
  // Papa reports rows by index; lines count the physical lines, so a
  // quoted field spanning lines keeps the number of its first line.
  let line = 1 + (header.join(',').match(/\n/g) || []).length
  for (let i = 1; i < data.length; i++) {
    const rec = data[i]
    line++
    const at = line
    line += rec.reduce((n, f) => n + (String(f).match(/\n/g) || []).length, 0)
    if (rec.every((f) => !String(f).trim())) continue
    if (rec.length !== header.length) {
      bad.push({ line: at, legacy_id: '', field: 'row', reason: `有 ${rec.length} 个字段，表头有 ${header.length} 个` })
      continue
    }
    const r = { line: at }
    rec.forEach((v, j) => cols[j] && (r[cols[j]] = v))
    rows.push(r)
  }
  return { rows, bad, ignored: [...ignored], encoding, format: 'csv' }
}
