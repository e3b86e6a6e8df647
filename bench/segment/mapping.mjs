// Runs Segment's own mapping-kit (`transform` from @segment/actions-core, as bundled with
// @segment/action-destinations 3.497.0) on cases read as NDJSON from stdin, one answer per line
// on stdout, in the same order. Used by the differential test crates/segment/tests/differential.rs.
//
//   node mapping.mjs < cases.ndjson > answers.ndjson
//
// A case is {"mapping": M, "event": E}; E may be any JSON (transform refuses non-objects).
// An answer is {"ok": V} with the result as JSON.stringify writes it, {"undefined": true} when
// the result is JavaScript's undefined, or {"error": MESSAGE} when transform throws. A line
// that is not JSON gets {"bad": MESSAGE}.
//
// The package is loaded from the npm install in MAPPING_NODE_PREFIX (a directory holding
// node_modules, installed from this directory's package.json and package-lock.json), else from
// this script's directory. Segment's code is only called, never copied.

import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const prefix = process.env.MAPPING_NODE_PREFIX || here
const require = createRequire(join(prefix, 'package.json'))
const { transform } = require('@segment/actions-core/mapping-kit')

// The answer of one case. transform mutates @replace options, so each case gets its own copy
// (the case was just parsed, so it is already one).
function answer(line) {
  let kase
  try {
    kase = JSON.parse(line)
  } catch (e) {
    return { bad: String(e && e.message) }
  }
  try {
    const out = transform(kase.mapping, kase.event)
    if (out === undefined) return { undefined: true }
    return { ok: wellFormed(out) }
  } catch (e) {
    return { error: messageOf(e) }
  }
}

// Half of a UTF-16 surrogate pair (a string spread or sliced through an emoji) cannot be held
// by a Rust string, nor read by a strict JSON parser: it is written as U+FFFD, as the Rust
// side writes it (a documented difference).
function wellFormed(v) {
  if (typeof v === 'string') return v.toWellFormed()
  if (Array.isArray(v)) return v.map(wellFormed)
  if (v !== null && typeof v === 'object') {
    const out = {}
    for (const [k, x] of Object.entries(v)) out[k.toWellFormed()] = wellFormed(x)
    return out
  }
  return v
}

// AggregateError (validation) lists its errors in its message already.
function messageOf(e) {
  if (e && typeof e.message === 'string') return e.message
  return String(e)
}

const out = []
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of rl) {
  if (line.trim() === '') continue
  let text
  try {
    text = JSON.stringify(answer(line))
  } catch (e) {
    // A result JSON cannot hold (a BigInt, a cycle): report it rather than stop.
    text = JSON.stringify({ bad: `unserialisable result: ${messageOf(e)}` })
  }
  out.push(text)
  if (out.length >= 256) {
    process.stdout.write(out.join('\n') + '\n')
    out.length = 0
  }
}
if (out.length) process.stdout.write(out.join('\n') + '\n')
