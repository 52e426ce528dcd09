// The ingest benchmark's load generator (bench/ingest.py, bench/README.md): publishes the
// first `count` events of the cached ChirpStack stream, in order, at QoS 1 to Mosquitto
// with MQTT.js, standing in for ChirpStack's MQTT integration.
//
// Why Node.js: paho's Python publisher cost about 173 µs of CPU per uplink, nearly half
// of the two cores the pipeline under test needs; MQTT.js does the same work for a
// fraction of that (figures in bench/README.md).
//
// Input: one JSON object on standard input, written by bench/ingest.py:
//   {host, port, clientId, path, count, rate, window, samples}
// where `rate` is events per second (0: as fast as the broker acknowledges), `window` the
// most events left unacknowledged by the broker, and `samples` the stream positions of the
// timed uplinks.
// Output: JSON lines on standard output, read by bench/ingest.py:
//   {"times": [[position, epoch seconds], ...]}  publish times of timed uplinks, every 0.2 s
//   {"done": {first, last_publish, all_acked, sent, uplinks, acked}}  once, at the end
// Errors go to standard error, with a non-zero exit.

import { closeSync, openSync, readSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { setImmediate as yieldToIO, setTimeout as sleep } from "node:timers/promises";

import mqtt from "mqtt";

// The stream's record header, as bench/ingest.py's RECORD struct ("<BHI"): kind (0 uplink,
// 1 status), topic length, payload length; then the topic and the payload bytes.
const HEADER = 7;
const UPLINK = 0;
const CHUNK = 4 << 20;
// Publishes per turn of the event loop: between turns the socket is written and the
// broker's PUBACKs are read.
const BURST = 500;

function epochSeconds() {
  return (performance.timeOrigin + performance.now()) / 1000;
}

// Reads the stream file's records in order. Each chunk is a fresh buffer, never reused:
// MQTT.js keeps a reference to each payload until the broker acknowledges it.
class Records {
  constructor(path) {
    this.fd = openSync(path, "r");
    this.buf = Buffer.alloc(0);
    this.off = 0;
  }

  // Makes at least `size` bytes available from this.off; false at the end of the file.
  ensure(size) {
    const left = this.buf.length - this.off;
    if (left >= size) {
      return true;
    }
    const next = Buffer.allocUnsafe(Math.max(CHUNK, size));
    this.buf.copy(next, 0, this.off);
    let filled = left;
    while (filled < next.length) {
      const n = readSync(this.fd, next, filled, next.length - filled, null);
      if (n === 0) {
        break;
      }
      filled += n;
    }
    this.buf = next.subarray(0, filled);
    this.off = 0;
    return filled >= size;
  }

  // [kind, topic, payload], or null at the end of the file.
  next() {
    if (!this.ensure(HEADER)) {
      return null;
    }
    const kind = this.buf[this.off];
    const topicLength = this.buf.readUInt16LE(this.off + 1);
    const payloadLength = this.buf.readUInt32LE(this.off + 3);
    if (!this.ensure(HEADER + topicLength + payloadLength)) {
      throw new Error("the stream file ends inside a record");
    }
    const start = this.off + HEADER;
    const topic = this.buf.toString("utf8", start, start + topicLength);
    const payload = this.buf.subarray(start + topicLength, start + topicLength + payloadLength);
    this.off = start + topicLength + payloadLength;
    return [kind, topic, payload];
  }

  close() {
    closeSync(this.fd);
  }
}

async function readStdin() {
  const parts = [];
  for await (const part of process.stdin) {
    parts.push(part);
  }
  return JSON.parse(Buffer.concat(parts).toString("utf8"));
}

function connect(config) {
  const client = mqtt.connect({
    host: config.host,
    port: config.port,
    protocol: "mqtt",
    protocolVersion: 4,
    clientId: config.clientId,
    clean: true,
    keepalive: 60,
    reconnectPeriod: 0,
    // Two per-packet costs that a load generator does not need: re-arming the keep-alive
    // timer after every packet sent (a PINGREQ every 60 s is kept), and the debug module's
    // checks on MQTT.js's many log calls per publish.
    reschedulePings: false,
    log: () => {},
  });
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve(client));
    client.once("error", reject);
  });
}

async function main() {
  const config = await readStdin();
  const samples = new Set(config.samples);
  const window = config.window;
  // Publishing resumes once the unacknowledged events fall to this many, not at the first
  // acknowledgement, so that a full window does not turn into one wake-up per PUBACK.
  const resumeAt = window - Math.max(1, Math.min(BURST, Math.floor(window / 2)));
  const client = await connect(config);
  let sent = 0;
  let acked = 0;
  let uplinks = 0;
  let wake = null;
  let failure = null;
  const fail = (err) => {
    failure = failure || err;
    if (wake) {
      wake();
    }
  };
  client.on("error", fail);
  client.on("close", () => fail(new Error("the broker closed the connection")));
  const onAck = (err) => {
    if (err) {
      fail(err);
      return;
    }
    acked += 1;
    if (wake && (sent - acked <= resumeAt || acked === sent)) {
      const resume = wake;
      wake = null;
      resume();
    }
  };
  const acks = () => new Promise((resolve) => { wake = resolve; });

  const emit = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
  let times = [];
  let flushed = performance.now();
  const records = new Records(config.path);
  const first = epochSeconds();
  const started = performance.now();
  for (let position = 0; position < config.count; position += 1) {
    if (position % BURST === 0) {
      await yieldToIO();
    }
    while (sent - acked >= window && !failure) {
      await acks();
    }
    if (failure) {
      throw failure;
    }
    if (config.rate > 0) {
      const ahead = sent / config.rate - (performance.now() - started) / 1000;
      if (ahead > 0.001) {
        await sleep(ahead * 1000);
      }
    }
    const record = records.next();
    if (record === null) {
      break;
    }
    const [kind, topic, payload] = record;
    if (samples.has(position)) {
      times.push([position, epochSeconds()]);
    }
    client.publish(topic, payload, { qos: 1 }, onAck);
    sent += 1;
    if (kind === UPLINK) {
      uplinks += 1;
    }
    if (times.length && performance.now() - flushed > 200) {
      emit({ times });
      times = [];
      flushed = performance.now();
    }
  }
  records.close();
  const lastPublish = epochSeconds();
  // Wait for the last acknowledgements, as long as the Python publisher did (300 s).
  const deadline = performance.now() + 300_000;
  while (acked < sent && !failure && performance.now() < deadline) {
    await Promise.race([acks(), sleep(100)]);
  }
  if (failure) {
    throw failure;
  }
  if (times.length) {
    emit({ times });
  }
  emit({ done: { first, last_publish: lastPublish, all_acked: epochSeconds(), sent, uplinks,
                 acked } });
  client.removeAllListeners("close");
  await client.endAsync();
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`publisher: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
