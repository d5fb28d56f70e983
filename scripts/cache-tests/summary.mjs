// Counts a cache-tests results file and compares it with every reverse proxy and CDN the suite
// publishes. Each test is judged on its own: cache-tests.fyi greys out tests whose dependency
// failed, and `freshness-none` (a check that the cache does not store responses without
// freshness information, which CloudFront's default TTL does) would grey out most of the suite.
// Usage: node summary.mjs SUITE_DIR RESULTS.json [NAME]
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const [suiteDir, resultsFile, name = 'edgehook'] = process.argv.slice(2)
const load = (file) => import(pathToFileURL(path.join(suiteDir, file)).href)
const tests = (await load('tests/index.mjs')).default
const { determineTestResult, resultTypes } = await load('test-engine/lib/results.mjs')
const published = (await load('results/index.mjs')).default

function count (results) {
  const counts = { pass: 0, fail: 0, optional_fail: 0, harness: 0 }
  const failures = []
  for (const suite of tests) {
    for (const test of suite.tests) {
      const result = determineTestResult(tests, test.id, results, false)
      if (result === resultTypes.pass) counts.pass++
      else if (result === resultTypes.fail) { counts.fail++; failures.push(test.id) }
      else if (result === resultTypes.optional_fail) counts.optional_fail++
      else if (result === resultTypes.harness_fail || result === resultTypes.setup_fail) counts.harness++
    }
  }
  return { counts, failures }
}

const ours = count(JSON.parse(fs.readFileSync(resultsFile, 'utf8')))
const rows = [[name, ours.counts]]
for (const entry of published) {
  if (entry.type === 'browser') continue
  const results = JSON.parse(fs.readFileSync(path.join(suiteDir, 'results', entry.file), 'utf8'))
  rows.push([`${entry.name} ${entry.version ?? ''}`.trim(), count(results).counts])
}
console.log('| cache | passed | required failed | optional failed | harness or setup |')
console.log('|---|---:|---:|---:|---:|')
for (const [who, c] of rows) {
  console.log(`| ${who} | ${c.pass} | ${c.fail} | ${c.optional_fail} | ${c.harness} |`)
}
console.log(`\n${name}'s required failures: ${ours.failures.join(', ') || 'none'}`)
