#!/usr/bin/env node
// A small stand-in for a coding agent in stream-json mode, for the demo queue: it reads its
// prompt from stdin, "works" for a moment, printing a few assistant messages, and reports a
// result with a cost, as `claude -p --output-format stream-json` does. Options:
//   --steps N       assistant messages to print (default 3)
//   --step-ms MS    pause between them (default 300)
//   --hang          after the result, leave a background process running and never exit
//                   (Warden's post-result watchdog kills it, and everything it started)
import { spawn } from 'node:child_process';

const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const prompt = Buffer.concat(chunks).toString('utf8').trim();
const started = Date.now();

emit({ type: 'system', subtype: 'init', cwd: process.cwd(), session_id: process.env.WARDEN_JOB_ID ?? 'demo' });
const steps = Number(option('--steps', '3'));
for (let i = 1; i <= steps; i++) {
  await sleep(Number(option('--step-ms', '300')));
  emit({ type: 'assistant', message: { content: [{ type: 'text', text: `step ${i} of ${steps}: ${prompt.split('\n')[0]}` }] } });
}
emit({
  type: 'result',
  subtype: 'success',
  is_error: false,
  duration_ms: Date.now() - started,
  num_turns: steps,
  result: `done: ${prompt.split('\n')[0]}`,
  total_cost_usd: 0.0012 * steps,
  usage: { input_tokens: 100 * steps, output_tokens: 20 * steps },
});
if (args.includes('--hang')) {
  // Like an agent whose background shell never ends.
  spawn('sleep', ['600'], { stdio: 'ignore', detached: true }).unref();
  setInterval(() => {}, 1 << 30);
}
