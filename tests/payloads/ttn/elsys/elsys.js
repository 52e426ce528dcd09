// Elsys ERS CO2 decoder for the decodeUplink interface, written for Hypervision from
// Elsys' payload description (type byte, then a big-endian value of a size fixed by the
// type). Same output as the built-in decoder ingest/decode/codecs/elsys.py.

function u(b, i, n) { var v = 0; for (var k = 0; k < n; k++) v = v * 256 + b[i + k]; return v; }
function s16(b, i) { var v = u(b, i, 2); return v > 0x7fff ? v - 0x10000 : v; }
function s8(x) { return x > 0x7f ? x - 0x100 : x; }

var TYPES = {
  0x01: [2, function (b, i, o) { o.temperature = s16(b, i) / 10; }],
  0x02: [1, function (b, i, o) { o.humidity = b[i]; }],
  0x03: [3, function (b, i, o) { o.x = s8(b[i]); o.y = s8(b[i + 1]); o.z = s8(b[i + 2]); }],
  0x04: [2, function (b, i, o) { o.light = u(b, i, 2); }],
  0x05: [1, function (b, i, o) { o.motion = b[i]; }],
  0x06: [2, function (b, i, o) { o.co2 = u(b, i, 2); }],
  0x07: [2, function (b, i, o) { o.vdd = u(b, i, 2); }],
  0x08: [2, function (b, i, o) { o.analog1 = u(b, i, 2); }],
  0x0a: [2, function (b, i, o) { o.pulse1 = u(b, i, 2); }],
  0x0b: [4, function (b, i, o) { o.pulseAbs = u(b, i, 4); }],
  0x0c: [2, function (b, i, o) { o.externalTemperature = s16(b, i) / 10; }],
  0x0d: [1, function (b, i, o) { o.digital = b[i]; }],
  0x0e: [2, function (b, i, o) { o.distance = u(b, i, 2); }],
  0x0f: [1, function (b, i, o) { o.accMotion = b[i]; }],
  0x10: [4, function (b, i, o) {
    o.irInternalTemperature = s16(b, i) / 10; o.irExternalTemperature = s16(b, i + 2) / 10;
  }],
  0x11: [1, function (b, i, o) { o.occupancy = b[i]; }],
  0x12: [1, function (b, i, o) { o.waterleak = b[i]; }],
  0x14: [4, function (b, i, o) { o.pressure = u(b, i, 4) / 1000; }],
  0x15: [2, function (b, i, o) { o.soundPeak = b[i]; o.soundAvg = b[i + 1]; }],
  0x16: [2, function (b, i, o) { o.pulse2 = u(b, i, 2); }],
  0x17: [4, function (b, i, o) { o.pulseAbs2 = u(b, i, 4); }],
  0x1c: [2, function (b, i, o) { o.tvoc = u(b, i, 2); }]
};

function decodeUplink(input) {
  var b = input.bytes;
  var out = {};
  var i = 0;
  while (i < b.length) {
    var entry = TYPES[b[i]];
    if (entry === undefined) return { errors: ["unknown data type 0x" + b[i].toString(16) + " at byte " + i] };
    if (i + 1 + entry[0] > b.length) return { errors: ["frame truncated in type 0x" + b[i].toString(16) + " at byte " + i] };
    entry[1](b, i + 1, out);
    i += 1 + entry[0];
  }
  return { data: out, warnings: [], errors: [] };
}
