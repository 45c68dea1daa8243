// What the client scripts share: their command-line options, and the rule for ending: one
// JSON line on stdout per message received, exit 0 after the expected count, exit 1 with a
// message on stderr on an error or when the time runs out.
'use strict';

const USAGE = '--url <base url> [--host <Host header>] --transport long-polling|websocket '
  + '--channel /<id> --token <base64 tenant/user:password> --count N --timeout-ms T';

function fail(text) {
  console.error(`${process.argv[1]}: ${text}`);
  process.exit(1);
}

/** The options of `argv` (without node and the script), checked. `transports` lists the
 * transports the script can use. */
function parseOptions(argv, transports) {
  const options = { host: undefined, transport: transports[0], count: 1, timeoutMs: 30000 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    const value = argv[i + 1];
    if (!name.startsWith('--') || value === undefined) fail(`bad arguments; usage: ${USAGE}`);
    const key = name.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!['url', 'host', 'transport', 'channel', 'token', 'count', 'timeoutMs', 'resubscribe'].includes(key)) {
      fail(`unknown option ${name}; usage: ${USAGE}`);
    }
    options[key] = value;
  }
  for (const key of ['url', 'channel', 'token']) {
    if (!options[key]) fail(`--${key} is required; usage: ${USAGE}`);
  }
  if (!transports.includes(options.transport)) {
    fail(`--transport must be one of ${transports.join(', ')}, not ${options.transport}`);
  }
  if (!/^\/[^/*]+$/.test(options.channel)) fail(`--channel must be /<id>, not ${options.channel}`);
  if (options.resubscribe !== undefined && !['yes', 'no'].includes(options.resubscribe)) {
    fail('--resubscribe must be yes or no');
  }
  options.resubscribe = options.resubscribe === 'yes';
  options.count = Number(options.count);
  options.timeoutMs = Number(options.timeoutMs);
  if (!Number.isInteger(options.count) || options.count < 1) fail('--count must be a positive integer');
  if (!Number.isInteger(options.timeoutMs) || options.timeoutMs < 1) fail('--timeout-ms must be a positive integer');
  try {
    new URL(options.url);
  } catch (error) {
    fail(`--url is not a URL: ${options.url}`);
  }
  return options;
}

/** Counts received messages against `count` within `timeoutMs`; `close` (optional, may be
 * async) runs before a successful exit, e.g. to disconnect politely. */
function receiver({ count, timeoutMs }, close) {
  let received = 0;
  let done = false;
  const timer = setTimeout(() => {
    fail(`timed out after ${timeoutMs} ms with ${received} of ${count} messages`);
  }, timeoutMs);
  return {
    /** Prints one received message; ends the process after the last one. */
    print(message) {
      if (done) return;
      process.stdout.write(`${JSON.stringify(message)}\n`);
      received += 1;
      if (received < count) return;
      done = true;
      clearTimeout(timer);
      // Give a polite disconnect a moment, but never wait on it for long.
      setTimeout(() => process.exit(0), 2000).unref();
      Promise.resolve()
        .then(() => close && close())
        .catch(() => {})
        .finally(() => process.exit(0));
    },
    fail,
  };
}

module.exports = { parseOptions, receiver, fail };
