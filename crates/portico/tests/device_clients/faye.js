#!/usr/bin/env node
// faye's Node client (npm `faye`) subscribed to one channel:
//
//   node faye.js --url http://127.0.0.1:PORT/notification/operations [--host NAME]
//     --transport long-polling|websocket --channel /<deviceId> --token <base64> --count N
//     --timeout-ms T
//
// Prints `{"channel", "data"}` per message received on the channel. The auth token goes in
// ext["com.cumulocity.authn"] of every message (a faye extension) and as an
// `Authorization: Basic` header. For long-polling the WebSocket transport is disabled. faye
// always handshakes over long-polling and then moves to WebSocket when it can; for
// websocket the script fails unless its connects did go over WebSocket, so a fall back to
// long-polling is not taken for success.
'use strict';

const faye = require('faye');
const cli = require('./cli.js');

const options = cli.parseOptions(process.argv.slice(2), ['long-polling', 'websocket']);
const { fail } = cli;

// faye's WebSocket client writes its own Host header next to any set here, and a request
// with two is refused; so a host name is put in the URL instead (`*.localhost` resolves to
// loopback through libnss-myhostname, and Node tries each address it gets).
const url = new URL(options.url);
if (options.host) url.hostname = options.host;
const client = new faye.Client(url.toString(), { timeout: 60, retry: 1 });
if (options.transport === 'long-polling') client.disable('websocket');
let connectedOverWebSocket = false;
// faye's own "autodisconnect" hook would answer SIGTERM with a disconnect; keep it simple.
client.disable('autodisconnect');
client.setHeader('Authorization', `Basic ${options.token}`);

client.addExtension({
  outgoing(message, callback) {
    if (message.channel === '/meta/connect' && message.connectionType === 'websocket') {
      connectedOverWebSocket = true;
    }
    message.ext = { ...(message.ext || {}), 'com.cumulocity.authn': { token: options.token } };
    callback(message);
  },
  incoming(message, callback) {
    if (message.channel === '/meta/handshake' && message.successful === false) {
      fail(`handshake failed: ${message.error || JSON.stringify(message)}`);
    }
    callback(message);
  },
});
client.on('transport:down', () => console.error('transport down'));

const receiver = cli.receiver(options, () => {
  if (options.transport === 'websocket' && !connectedOverWebSocket) {
    fail('the messages came, but faye never connected over WebSocket');
  }
  return client.disconnect();
});
const subscription = client.subscribe(options.channel, (data) => {
  receiver.print({ channel: options.channel, data });
});
subscription.then(
  () => console.error(`subscribed to ${options.channel} over ${options.transport}`),
  (error) => fail(`subscribe failed: ${error && error.message ? error.message : JSON.stringify(error)}`),
);
