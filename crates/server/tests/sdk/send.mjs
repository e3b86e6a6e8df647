// Sends the audience events of scenario.json through the official Segment Node SDK
// (@segment/analytics-node).
//
//   node send.mjs --host http://127.0.0.1:8080 --write-key KEY [--scenario FILE] [--debug]
//
// Host and write key may also come from SEGMENT_HOST and SEGMENT_WRITE_KEY. The package is
// loaded from the npm install in SDK_NODE_PREFIX (a directory holding node_modules), else from
// this script's directory. The events are those of send.py: Engage identify and
// "Audience Entered"/"Audience Exited" track events, event i at base + i seconds; a step's
// `name` is an identify's trait `name`.
//
// Prints one JSON line per delivered event ({"step", "messageId"}) on stdout. Exits 1 if the SDK emitted
// an `error` event, if an event's callback reported a failure, or on bad input.

import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: process.env.SEGMENT_HOST },
    'write-key': { type: 'string', default: process.env.SEGMENT_WRITE_KEY },
    scenario: { type: 'string', default: join(here, 'scenario.json') },
    debug: { type: 'boolean', default: false },
  },
})
if (!args.host || !args['write-key']) {
  console.error('--host and --write-key (or SEGMENT_HOST and SEGMENT_WRITE_KEY) are required')
  process.exit(2)
}

const prefix = process.env.SDK_NODE_PREFIX || here
const require = createRequire(join(prefix, 'package.json'))
const { Analytics } = require('@segment/analytics-node')

const steps = JSON.parse(readFileSync(args.scenario, 'utf8')).steps
const errors = []

const analytics = new Analytics({
  writeKey: args['write-key'],
  host: args.host,
  // path stays the default, /v1/batch.
  // Small batches, sent quickly: several requests per run.
  maxEventsInBatch: 4,
  flushInterval: 50,
  // Few retries, so a failing service fails the run within the test's timeout.
  maxRetries: 3,
  httpRequestTimeout: 10000,
})
analytics.on('error', (err) => {
  errors.push(`${err.code}: ${err.reason?.message ?? err.reason}`)
})
if (args.debug) {
  analytics.on('http_request', (r) => console.error('request', r.method, r.url, r.headers))
  analytics.on('http_response', (r) => console.error('response', r.status, r.statusText))
}

function engageContext(audience) {
  return {
    personas: {
      computation_key: audience,
      computation_class: 'audience',
      computation_id: `aud_${audience}`,
      space_id: 'spa_sdk_test',
      namespace: 'spa:spa_sdk_test',
    },
  }
}

const base = Math.floor(Date.now() / 1000) * 1000 - (steps.length + 60) * 1000
const delivered = []
steps.forEach((step, i) => {
  const { audience, email, user } = step
  const member = Boolean(step.member)
  const timestamp = new Date(base + i * 1000)
  // Called once the event's batch was accepted (or given up); the SDK makes the messageId.
  const callback = (err, ctx) => {
    if (err) {
      errors.push(`step ${i}: ${err.message ?? err}`)
    } else {
      delivered.push(i)
      console.log(JSON.stringify({ step: i, messageId: ctx.event.messageId }))
    }
  }
  if (step.call === 'identify') {
    // A name may hold a lone surrogate (a string cut inside an emoji): JSON.stringify writes it
    // as a \u escape.
    const traits = { [audience]: member, email, ...(step.name === undefined ? {} : { name: step.name }) }
    analytics.identify({ userId: user, traits, context: engageContext(audience), timestamp }, callback)
  } else if (step.call === 'track') {
    analytics.track(
      {
        userId: user,
        event: member ? 'Audience Entered' : 'Audience Exited',
        properties: { [audience]: member, audience_key: audience },
        context: { ...engageContext(audience), traits: { email } },
        timestamp,
      },
      callback,
    )
  } else {
    console.error(`step ${i}: unknown call ${JSON.stringify(step.call)}`)
    process.exit(2)
  }
})

await analytics.closeAndFlush({ timeout: 60000 })

for (const e of errors) console.error(`SDK error: ${e}`)
if (errors.length || delivered.length !== steps.length) {
  console.error(`${delivered.length} of ${steps.length} events delivered`)
  process.exit(1)
}
