#!/usr/bin/env node
// Benchmark of Segment's published "Iterable Lists (Actions)" destination (npm package
// @segment/action-destinations, destination directory "iterable-audiences") against a local
// Iterable API emulator. Only calls the package; no Segment code is copied here.
//
// Usage: node bench/segment/run.mjs --events FILE.json --base-url http://127.0.0.1:PORT --api-key KEY
//          [--batch N] [--warmup N] [--project-type hybrid|userId] [--verify]
// Prints one JSON line on stdout; diagnostics go to stderr.

import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'

const DESTINATION_DIR = 'iterable-audiences'
const DESTINATION_PATH = `@segment/action-destinations/dist/destinations/${DESTINATION_DIR}`
// Segment's platform batch size when an action defines no batch_size field.
const PLATFORM_DEFAULT_BATCH_SIZE = 1000

const USAGE =
  'usage: node bench/segment/run.mjs --events FILE.json --base-url http://127.0.0.1:PORT --api-key KEY ' +
  '[--batch N] [--warmup N] [--project-type hybrid|userId] [--verify]'

function die(msg, code = 2) {
  process.stderr.write(`run.mjs: ${msg}\n`)
  process.exit(code)
}

function log(msg) {
  process.stderr.write(`run.mjs: ${msg}\n`)
}

// ---------------------------------------------------------------- arguments
function parseArgs(argv) {
  const opts = { batch: undefined, warmup: 2000, projectType: 'hybrid', verify: false }
  const takesValue = {
    '--events': 'events',
    '--base-url': 'baseUrl',
    '--api-key': 'apiKey',
    '--batch': 'batch',
    '--warmup': 'warmup',
    '--project-type': 'projectType'
  }
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]
    let value
    const eq = arg.indexOf('=')
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1)
      arg = arg.slice(0, eq)
    }
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE + '\n')
      process.exit(0)
    }
    if (arg === '--verify') {
      opts.verify = true
      continue
    }
    const key = takesValue[arg]
    if (!key) die(`unknown argument: ${arg}\n${USAGE}`)
    if (value === undefined) {
      if (i + 1 >= argv.length) die(`${arg} needs a value\n${USAGE}`)
      value = argv[++i]
    }
    opts[key] = value
  }
  for (const [flag, key] of [
    ['--events', 'events'],
    ['--base-url', 'baseUrl'],
    ['--api-key', 'apiKey']
  ]) {
    if (!opts[key]) die(`missing required ${flag}\n${USAGE}`)
  }
  const intArg = (name, v, min) => {
    if (!/^\d+$/.test(String(v)) || Number(v) < min) die(`${name} must be an integer >= ${min}, got ${v}`)
    return Number(v)
  }
  if (opts.batch !== undefined) opts.batch = intArg('--batch', opts.batch, 1)
  opts.warmup = intArg('--warmup', opts.warmup, 0)
  if (!['hybrid', 'userId'].includes(opts.projectType)) die(`--project-type must be hybrid or userId`)
  let base
  try {
    base = new URL(opts.baseUrl)
  } catch {
    die(`--base-url is not a URL: ${opts.baseUrl}`)
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') die('--base-url must be http:// or https://')
  opts.base = base
  return opts
}

const opts = parseArgs(process.argv.slice(2))

// ---------------------------------------------------------------- events
let events
try {
  events = JSON.parse(readFileSync(opts.events, 'utf8'))
} catch (e) {
  die(`cannot read events file ${opts.events}: ${e.message}`)
}
if (!Array.isArray(events) || events.length === 0) die('events file must hold a non-empty JSON array')
if (opts.warmup >= events.length) {
  die(`--warmup (${opts.warmup}) must be smaller than the number of events (${events.length})`)
}

// ---------------------------------------------------------------- HTTP redirect
// The package's request client (@segment/actions-core/request-client) calls the default export of
// @segment/actions-core/fetch, which is `cross-fetch` (node-fetch v2 on Node, i.e. node:http/https),
// not globalThis.fetch. We load cross-fetch first and replace its module export, before actions-core
// is loaded, with a wrapper that rewrites the origin of every URL to --base-url (path and query are
// kept) and counts requests and failures.
const require = createRequire(import.meta.url)
let destPath, coreRequire, pkgVersion, crossFetchPath
try {
  destPath = require.resolve(DESTINATION_PATH)
  coreRequire = createRequire(destPath)
  const pkgJsonPath = require.resolve('@segment/action-destinations/package.json')
  pkgVersion = JSON.parse(readFileSync(pkgJsonPath, 'utf8')).version
  const coreEntry = coreRequire.resolve('@segment/actions-core')
  crossFetchPath = createRequire(coreEntry).resolve('cross-fetch')
} catch (e) {
  die(
    `cannot find @segment/action-destinations (${DESTINATION_DIR}); run "npm ci --prefix bench/segment" first: ${e.message}`,
    3
  )
}

const counters = { requests: 0, errors: 0, unredirected: 0, statuses: {} }
const base = opts.base
const baseOrigin = base.origin
const basePrefix = base.pathname.replace(/\/+$/, '') // allows a base URL with a path prefix

function redirectUrl(original) {
  const u = new URL(original)
  return baseOrigin + basePrefix + u.pathname + u.search
}

const crossFetch = require(crossFetchPath)
const realFetch = crossFetch.default || crossFetch
const { Request: FetchRequest } = crossFetch
const redirectingFetch = async function (input, init) {
  counters.requests++
  let target
  if (input instanceof FetchRequest) {
    target = new FetchRequest(redirectUrl(input.url), input)
  } else {
    target = redirectUrl(typeof input === 'string' ? input : String(input))
  }
  try {
    const res = await realFetch.call(this, target, init)
    counters.statuses[res.status] = (counters.statuses[res.status] || 0) + 1
    if (res.status < 200 || res.status > 299) counters.errors++
    return res
  } catch (e) {
    counters.errors++
    throw e
  }
}
Object.assign(redirectingFetch, crossFetch)
redirectingFetch.fetch = redirectingFetch
redirectingFetch.default = redirectingFetch
require.cache[crossFetchPath].exports = redirectingFetch

// Guard: anything that still tries to leave for another host through node:http/https is refused
// and counted, so a missed redirect cannot go unnoticed.
const baseHost = base.hostname.replace(/^\[|\]$/g, '')
for (const mod of [http, https]) {
  const orig = mod.request
  mod.request = function (...args) {
    const a = args[0]
    let host
    if (typeof a === 'string') host = new URL(a).hostname
    else if (a instanceof URL) host = a.hostname
    else if (a && typeof a === 'object') host = a.hostname || (a.host || '').replace(/:\d+$/, '')
    host = (host || '').replace(/^\[|\]$/g, '')
    if (host && host !== baseHost) {
      counters.unredirected++
      throw new Error(`run.mjs guard: request to ${host} was not redirected to ${baseHost}`)
    }
    return orig.apply(this, args)
  }
}

// ---------------------------------------------------------------- load the destination
let Destination, defaultValues, definition
try {
  const core = coreRequire('@segment/actions-core')
  Destination = core.Destination
  defaultValues = core.defaultValues
  if (require.cache[crossFetchPath].exports !== redirectingFetch) throw new Error('fetch patch lost')
  if (core.fetch !== redirectingFetch) throw new Error('@segment/actions-core did not pick up the redirecting fetch')
  definition = require(destPath).default
} catch (e) {
  die(`cannot load ${DESTINATION_PATH}: ${e.stack || e.message}`, 3)
}
const destination = new Destination(definition)
const actionSlugs = Object.keys(definition.actions || {})
const actionSlug = actionSlugs.includes('syncAudience') ? 'syncAudience' : actionSlugs[0]
const action = definition.actions[actionSlug]
if (!action) die(`destination ${DESTINATION_DIR} has no actions`, 3)
const mode = typeof action.performBatch === 'function' ? 'batch' : 'per-event'
const batchSizeDefault = action.fields?.batch_size?.default
const batchSize = opts.batch ?? (typeof batchSizeDefault === 'number' ? batchSizeDefault : PLATFORM_DEFAULT_BATCH_SIZE)
const mapping = defaultValues(action.fields)
const subscribe = action.defaultSubscription
if (!subscribe) die(`action ${actionSlug} has no defaultSubscription`, 3)
log(
  `loaded ${definition.name} (${DESTINATION_DIR}) from @segment/action-destinations ${pkgVersion}; ` +
    `action ${actionSlug}, mode ${mode}, batch ${batchSize}, subscription ${JSON.stringify(subscribe)}`
)

// Destination settings as Segment stores them for an enabled action: the apiKey/project type plus
// the subscription (trigger + mapping from the field defaults).
const settings = {
  apiKey: opts.apiKey,
  iterableProjectType: opts.projectType,
  subscription: { subscribe, partnerAction: actionSlug, mapping }
}

// ---------------------------------------------------------------- audience lifecycle (untimed)
// Engage calls the destination's createAudience once per audience and stamps the returned list id
// on every event as context.personas.external_audience_id. Do the same for events that lack it.
const notes = []
const setupRequestsBefore = counters.requests
const keysNeedingId = new Map() // computation_key -> personas of first event
for (const ev of events) {
  const p = ev?.context?.personas
  if (p && p.computation_key && (p.external_audience_id === undefined || p.external_audience_id === null)) {
    if (!keysNeedingId.has(p.computation_key)) keysNeedingId.set(p.computation_key, p)
  }
}
const externalIds = new Map()
for (const [key, p] of keysNeedingId) {
  let res
  try {
    res = await destination.createAudience({
      audienceName: key,
      settings: { apiKey: opts.apiKey, iterableProjectType: opts.projectType },
      audienceSettings: p.audience_settings || {},
      personas: {
        computation_key: key,
        computation_id: p.computation_id || `bench_${key}`,
        namespace: p.namespace || 'spa_bench'
      }
    })
  } catch (e) {
    die(`createAudience(${key}) failed: ${e.message}`, 4)
  }
  if (res?.externalId === undefined || res?.externalId === null) die(`createAudience(${key}) returned no externalId`, 4)
  externalIds.set(key, String(res.externalId))
}
for (const ev of events) {
  const p = ev?.context?.personas
  if (p && externalIds.has(p.computation_key) && (p.external_audience_id === undefined || p.external_audience_id === null)) {
    p.external_audience_id = externalIds.get(p.computation_key)
  }
}
const setupRequests = counters.requests - setupRequestsBefore
const setupErrors = counters.errors
if (externalIds.size > 0) {
  notes.push(
    `untimed setup: destination.createAudience() run for ${externalIds.size} audiences (GET /api/lists, POST /api/lists when missing) ` +
      `and the list ids stamped on the events as context.personas.external_audience_id, as Engage does`
  )
}
log(`setup: ${externalIds.size} audiences provisioned with ${setupRequests} requests`)

// ---------------------------------------------------------------- batching and delivery
// Segment batches per destination instance + mapping + audience (computation_key, external id,
// audience settings); the destination sends a whole batch to the list of its first event, so the
// runner groups the same way: one buffer per audience, flushed when it reaches batchSize.
const eventErrorSamples = []
let eventErrors = 0
let eventOk = 0

function batchKey(ev) {
  const p = ev?.context?.personas || {}
  return `${p.computation_key}\u0000${p.external_audience_id}\u0000${JSON.stringify(p.audience_settings ?? null)}`
}

async function deliver(batch) {
  let results
  try {
    results = mode === 'batch' ? await destination.onBatch(batch, settings) : null
  } catch (e) {
    eventErrors += batch.length
    if (eventErrorSamples.length < 5) eventErrorSamples.push(String(e.message))
    return
  }
  if (mode === 'batch') {
    for (const r of results) {
      for (const m of r.multistatus || []) {
        if (m && m.status >= 200 && m.status < 300) eventOk++
        else {
          eventErrors++
          if (eventErrorSamples.length < 5) eventErrorSamples.push(`${m?.status} ${m?.errormessage}`)
        }
      }
    }
  }
}

async function deliverPerEvent(ev) {
  try {
    await destination.onEvent(ev, settings)
    eventOk++
  } catch (e) {
    eventErrors++
    if (eventErrorSamples.length < 5) eventErrorSamples.push(String(e.message))
  }
}

async function run(slice) {
  if (mode === 'per-event') {
    for (const ev of slice) await deliverPerEvent(ev)
    return
  }
  const buffers = new Map()
  for (const ev of slice) {
    const k = batchKey(ev)
    let buf = buffers.get(k)
    if (!buf) buffers.set(k, (buf = []))
    buf.push(ev)
    if (buf.length >= batchSize) {
      buffers.set(k, [])
      await deliver(buf)
    }
  }
  for (const buf of buffers.values()) if (buf.length > 0) await deliver(buf)
}

const warmupEvents = events.slice(0, opts.warmup)
const timedEvents = events.slice(opts.warmup)

// Warm-up (untimed): the first --warmup events of the file, delivered for real.
await run(warmupEvents)
const warm = { requests: counters.requests, errors: counters.errors, eventErrors, eventOk }
log(`warm-up: ${warmupEvents.length} events, ${warm.requests - setupRequests} requests`)

// Timed part.
const cpu0 = process.cpuUsage()
const t0 = process.hrtime.bigint()
await run(timedEvents)
const t1 = process.hrtime.bigint()
const cpu = process.cpuUsage(cpu0)

const wallS = Number(t1 - t0) / 1e9
const userS = cpu.user / 1e6
const sysS = cpu.system / 1e6
const cpuS = userS + sysS
const n = timedEvents.length
const timedRequests = counters.requests - warm.requests
const timedErrors = counters.errors - warm.errors
const timedEventErrors = eventErrors - warm.eventErrors

notes.push(
  `warm-up: first ${warmupEvents.length} events of the file, delivered untimed; timed: the remaining ${n}`,
  `entry point: Destination.onBatch(events, settings) (settings validation, subscription FQL match, default mapping, performBatch); ` +
    `batches grouped per audience, sent one at a time`,
  `HTTP: cross-fetch (node-fetch 2) export of @segment/actions-core replaced by a wrapper that rewrites the origin to --base-url`,
  `loaded ${DESTINATION_PATH} directly: the package index (dist/index.js) fails to load all destinations (missing dependency xml-js)`
)
if (eventErrorSamples.length) log(`event error samples: ${JSON.stringify(eventErrorSamples)}`)
if (counters.unredirected) log(`WARNING: ${counters.unredirected} requests were not redirected`)

const round = (x, d = 6) => Number(x.toFixed(d))
const out = {
  implementation: '@segment/action-destinations',
  package_version: pkgVersion,
  destination: DESTINATION_DIR,
  destination_name: definition.name,
  action: actionSlug,
  mode,
  batch_size: batchSize,
  events: n,
  warmup_events: warmupEvents.length,
  wall_s: round(wallS),
  cpu_user_s: round(userS),
  cpu_system_s: round(sysS),
  cpu_s: round(cpuS),
  events_per_sec: round(n / wallS, 1),
  events_per_cpu_sec: round(n / cpuS, 1),
  cpu_us_per_event: round((cpuS * 1e6) / n, 3),
  requests: timedRequests,
  errors: timedErrors,
  event_errors: timedEventErrors,
  total_requests: counters.requests,
  total_errors: counters.errors,
  setup_requests: setupRequests,
  setup_errors: setupErrors,
  unredirected_requests: counters.unredirected,
  http_statuses: counters.statuses,
  node: process.version,
  notes
}

// ---------------------------------------------------------------- optional check (emulator only)
if (opts.verify) {
  out.verify = await verify()
}

process.stdout.write(JSON.stringify(out) + '\n')
process.exit(out.verify && !out.verify.ok ? 1 : 0)

// Expected final membership from the events (a later event of the same user and audience wins),
// compared with the iterable-emulator's GET /_emulator/state?members=true.
async function verify() {
  const expected = new Map() // list id -> Map(identity -> bool)
  for (const ev of events) {
    const p = ev?.context?.personas
    if (!p?.computation_key) continue
    const bag = ev.traits ?? ev.properties ?? {}
    const email = ev.traits?.email ?? ev.properties?.email
    const id = email ? `e:${email}` : `u:${ev.userId}`
    const listId = String(Number(p.external_audience_id))
    if (!expected.has(listId)) expected.set(listId, new Map())
    expected.get(listId).set(id, Boolean(bag[p.computation_key]))
  }
  const res = await realFetch(`${baseOrigin}${basePrefix}/_emulator/state?members=true`)
  if (!res.ok) return { ok: false, error: `GET /_emulator/state answered ${res.status}` }
  const state = await res.json()
  const actual = new Map()
  for (const proj of state.projects || []) {
    for (const l of proj.lists || []) {
      actual.set(String(l.id), new Set((l.members || []).map((m) => (m.email ? `e:${m.email}` : `u:${m.userId}`))))
    }
  }
  let expectedMembers = 0
  let missing = 0
  let unexpected = 0
  let extra = 0
  for (const [listId, m] of expected) {
    const have = actual.get(listId) || new Set()
    for (const id of have) if (!m.has(id)) extra++
    for (const [id, member] of m) {
      if (member) {
        expectedMembers++
        if (!have.has(id)) missing++
      } else if (have.has(id)) unexpected++
    }
  }
  return {
    ok: missing === 0 && unexpected === 0 && extra === 0,
    lists: expected.size,
    expected_members: expectedMembers,
    missing,
    unexpected,
    extra
  }
}
