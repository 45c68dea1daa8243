#!/usr/bin/env node
// The CometD JavaScript client (npm `cometd` 9, an ES module written for browsers) run in
// Node through `adapt()` from `cometd-nodejs-client`, subscribed to one channel:
//
//   node cometd.mjs --url http://127.0.0.1:PORT/notification/operations [--host NAME]
//     --transport long-polling|websocket --channel /<deviceId> --token <base64> --count N
//     --timeout-ms T
//
// Prints `{"channel", "data"}` per message received on the channel. Only the transport asked
// for is registered, so the client cannot fall back to another one unnoticed.
import { adapt } from 'cometd-nodejs-client';
import { CometD } from 'cometd';
import cli from './cli.js';

const options = cli.parseOptions(process.argv.slice(2), ['long-polling', 'websocket']);
const { fail } = cli;

adapt();
const headers = { Authorization: `Basic ${options.token}` };
if (options.host) headers.Host = options.host;
// adapt() hands the client `ws`'s WebSocket as the browser's, which takes no headers; this
// one passes the same Authorization and Host headers on the upgrade request.
const NodeWebSocket = globalThis.window.WebSocket;
globalThis.window.WebSocket = class extends NodeWebSocket {
  constructor(url, protocols) {
    super(url, protocols, { headers });
  }
};

const cometd = new CometD();
for (const name of cometd.getTransportTypes()) {
  if (name !== options.transport) cometd.unregisterTransport(name);
}
cometd.configure({
  url: options.url,
  requestHeaders: headers,
  // Report problems instead of retrying quietly until the time runs out.
  maxNetworkDelay: 30000,
});

const receiver = cli.receiver(options, () => new Promise((resolve) => cometd.disconnect(resolve)));
const authn = { 'com.cumulocity.authn': { token: options.token } };

let subscribed = false;
cometd.addListener('/meta/handshake', (reply) => {
  if (!reply.successful) {
    fail(`handshake failed: ${JSON.stringify(reply.error || reply.failure || reply)}`);
  }
});
cometd.addListener('/meta/unsuccessful', (reply) => {
  console.error(`unsuccessful: ${JSON.stringify(reply)}`);
});
cometd.handshake({ ext: authn }, (reply) => {
  if (!reply.successful || subscribed) return;
  subscribed = true;
  if (reply.connectionType && reply.connectionType !== options.transport) {
    fail(`handshake chose ${reply.connectionType}, not ${options.transport}`);
  }
  cometd.subscribe(options.channel, (message) => {
    receiver.print({ channel: message.channel, data: message.data });
  }, { ext: authn }, (subscribeReply) => {
    if (!subscribeReply.successful) {
      fail(`subscribe failed: ${JSON.stringify(subscribeReply.error || subscribeReply)}`);
    }
    console.error(`subscribed to ${options.channel} over ${cometd.getTransport().type}`);
  });
});
