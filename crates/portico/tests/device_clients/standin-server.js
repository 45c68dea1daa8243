#!/usr/bin/env node
// A stand-in Bayeux server for checking the client scripts in this folder by hand, without
// Portico: faye's own Node server mounted at /notification/operations on 127.0.0.1:0.
// Portico's tests never use it; they run the scripts against `portico serve`.
//
//   node standin-server.js --token <base64 tenant/user:password> --count N [--hold S]
//
// faye holds every connect for S seconds (default 25) when there is nothing to deliver,
// the first one after the handshake too (Portico answers that one at once): clients that
// wait for the first connect's reply before subscribing (aiocometd) take that long.
// Prints `{"port": P}` once listening. A handshake without the token in
// ext["com.cumulocity.authn"].token is refused (401::), so a script that forgets it fails.
// Every subscription to a channel /<id> is answered, half a second later, with N messages
// `{"id": "<id>-<k>", "status": "PENDING"}` published on that channel. Each handshake is
// logged to stderr with its connection types, whether the ext token matched and whether an
// `Authorization: Basic <token>` header came with it. `POST /publish?channel=/<id>&count=N`
// publishes N more on demand.
'use strict';

const http = require('node:http');
const faye = require('faye');

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const token = option('token');
const count = Number(option('count', '1'));
const hold = Number(option('hold', '25'));
if (!token || !Number.isInteger(count) || count < 0 || !(hold > 0)) {
  console.error('usage: node standin-server.js --token <base64 tenant/user:password> --count N [--hold S]');
  process.exit(2);
}

const bayeux = new faye.NodeAdapter({ mount: '/notification/operations', timeout: hold });
let published = 0;

function publish(channel, n) {
  for (let k = 0; k < n; k += 1) {
    published += 1;
    const id = `${channel.slice(1)}-${published}`;
    bayeux.getClient().publish(channel, { id, status: 'PENDING', deviceId: channel.slice(1) });
  }
}

bayeux.addExtension({
  incoming(message, request, callback) {
    // The server's own in-process client (which publishes) comes without a request.
    if (message.channel === '/meta/handshake' && request) {
      const sent = message.ext && message.ext['com.cumulocity.authn'] && message.ext['com.cumulocity.authn'].token;
      const header = request && request.headers ? request.headers.authorization : undefined;
      console.error(JSON.stringify({
        handshake: message.supportedConnectionTypes,
        extToken: sent === token,
        basicHeader: header === `Basic ${token}`,
      }));
      if (sent !== token) message.error = '401::no or wrong ext token';
    }
    if (message.channel === '/meta/connect' && message.connectionType) {
      console.error(JSON.stringify({ connect: message.connectionType }));
    }
    callback(message);
  },
});

bayeux.on('subscribe', (clientId, channel) => {
  if (/^\/[^/*]+$/.test(channel)) setTimeout(() => publish(channel, count), 500);
});

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://standin');
  if (req.method === 'POST' && url.pathname === '/publish') {
    const channel = url.searchParams.get('channel') || '';
    const n = Number(url.searchParams.get('count') || '1');
    if (!/^\/[^/*]+$/.test(channel) || !Number.isInteger(n) || n < 1) {
      res.writeHead(400).end('channel=/<id> and count=N wanted\n');
      return;
    }
    publish(channel, n);
    res.writeHead(200).end(`${n}\n`);
    return;
  }
  res.writeHead(404).end();
});
bayeux.attach(server);
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
