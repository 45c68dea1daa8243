#!/usr/bin/env node
// Cumulocity's JavaScript client (npm `@c8y/client`) receiving a device's operations: its
// `Realtime` on /notification/operations, signed in with `BasicAuth`, subscribed to
// /<deviceId>. It takes the same options as the other scripts:
//
//   node c8y/c8y_client.js --url http://127.0.0.1:PORT/notification/operations [--host NAME]
//     [--transport long-polling] --channel /<deviceId> --token <base64 tenant/user:password>
//     --count N --timeout-ms T [--resubscribe yes|no]
//
// The URL is split into the Client's base URL and the Realtime path; the token into the
// tenant, user and password BasicAuth wants. @c8y/client's CometD (4.0.8) uses long-polling
// only. After a re-handshake (the server lost the session) it no longer has its
// subscription; with `--resubscribe yes` the script subscribes again then, as an app that
// listens to handshakes does; by default it does not, as a plain app would not.
'use strict';

const { BasicAuth, Client, Realtime } = require('@c8y/client');
const cli = require('../cli.js');

const options = cli.parseOptions(process.argv.slice(2), ['long-polling']);
const { fail } = cli;

const url = new URL(options.url);
const baseUrl = url.origin;
const path = url.pathname;
const credentials = Buffer.from(options.token, 'base64').toString('utf8');
const match = /^([^/:]+)\/([^:]+):(.*)$/s.exec(credentials);
if (!match) fail('--token must be base64 of "<tenant>/<user>:<password>"');
const [, tenant, user, password] = match;

const client = new Client(new BasicAuth({ tenant, user, password }), baseUrl);
if (options.host) client.core.defaultHeaders = { ...client.core.defaultHeaders, Host: options.host };

let handshakes = 0;
let subscription;
const realtime = new Realtime(client.core, path, (reply) => {
  if (!reply.successful) {
    fail(`handshake failed: ${JSON.stringify(reply.error || reply.failure || reply)}`);
  }
  handshakes += 1;
  if (handshakes > 1) {
    console.error(`re-handshake #${handshakes - 1}`);
    if (options.resubscribe) subscribe();
  }
});

const receiver = cli.receiver(options, () => new Promise((resolve) => realtime.disconnect(resolve)));

function subscribe() {
  subscription = realtime.subscribe(options.channel, (message) => {
    receiver.print({ channel: message.channel, data: message.data });
  });
}

realtime.cometd.addListener('/meta/subscribe', (reply) => {
  if (!reply.successful) fail(`subscribe failed: ${JSON.stringify(reply.error || reply)}`);
  console.error(`subscribed to ${options.channel} over long-polling`);
});
subscribe();
if (!subscription) fail('@c8y/client returned no subscription');
