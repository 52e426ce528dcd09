// Milesight AM103 / AM103L decoder for the ChirpStack / TTN decodeUplink interface.
// Written for Hypervision from Milesight's public payload table (channel, type, value;
// little-endian); it returns the same keys as Milesight's codec and as the built-in
// decoder ingest/decode/codecs/milesight_am103.py, which the vector tests compare.

function u16(b, i) { return b[i] | (b[i + 1] << 8); }
function i16(b, i) { var v = u16(b, i); return v > 0x7fff ? v - 0x10000 : v; }
function u32(b, i) { return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) + b[i + 3] * 0x1000000; }
function hex(n) { return (n < 16 ? "0" : "") + n.toString(16); }

var CLASSES = { 0: "Class A", 1: "Class B", 2: "Class C", 3: "Class CtoB" };
var ATTRIBUTE_LENGTHS = { 0x01: 1, 0x09: 2, 0x0a: 2, 0xff: 2, 0x16: 8, 0x0f: 1, 0xfe: 1, 0x0b: 1 };

function attribute(kind, b, i, out) {
  var n = ATTRIBUTE_LENGTHS[kind];
  if (n === undefined) throw new Error("unknown attribute 0xff 0x" + hex(kind));
  if (i + n > b.length) throw new Error("frame truncated in attribute 0x" + hex(kind));
  if (kind === 0x01) out.ipso_version = "v" + (b[i] >> 4) + "." + (b[i] & 0x0f);
  else if (kind === 0x09) out.hardware_version = "v" + b[i].toString(16) + "." + (b[i + 1] >> 4);
  else if (kind === 0x0a) out.firmware_version = "v" + b[i].toString(16) + "." + b[i + 1].toString(16);
  else if (kind === 0xff) out.tsl_version = "v" + b[i] + "." + b[i + 1];
  else if (kind === 0x16) {
    var sn = "";
    for (var k = 0; k < 8; k++) sn += hex(b[i + k]);
    out.sn = sn;
  } else if (kind === 0x0f) out.lorawan_class = CLASSES[b[i]] || "unknown";
  else if (kind === 0xfe) out.reset_event = "reset";
  else if (kind === 0x0b) out.device_status = "on";
  return i + n;
}

function decodeUplink(input) {
  var b = input.bytes;
  var out = {};
  var i = 0;
  function need(n, what) {
    if (i + n > b.length) throw new Error("frame truncated in " + what + " at byte " + i);
  }
  try {
    while (i < b.length) {
      need(2, "channel header");
      var channel = b[i], kind = b[i + 1];
      i += 2;
      if (channel === 0x01 && kind === 0x75) { need(1, "battery"); out.battery = b[i]; i += 1; }
      else if (channel === 0x03 && kind === 0x67) { need(2, "temperature"); out.temperature = i16(b, i) / 10; i += 2; }
      else if (channel === 0x04 && kind === 0x68) { need(1, "humidity"); out.humidity = b[i] / 2; i += 1; }
      else if (channel === 0x07 && kind === 0x7d) { need(2, "co2"); out.co2 = u16(b, i); i += 2; }
      else if (channel === 0x20 && kind === 0xce) {
        need(9, "history");
        out.history = out.history || [];
        out.history.push({ timestamp: u32(b, i), temperature: i16(b, i + 4) / 10,
                           humidity: b[i + 6] / 2, co2: u16(b, i + 7) });
        i += 9;
      } else if (channel === 0xff && kind === 0x18) {
        need(2, "sensor status");
        var bits = b[i + 1];
        out.sensor_enable = {
          temperature: bits & 0x01 ? "enable" : "disable",
          humidity: bits & 0x02 ? "enable" : "disable",
          co2: bits & 0x10 ? "enable" : "disable"
        };
        i += 2;
      } else if (channel === 0xff) { i = attribute(kind, b, i, out); }
      else { throw new Error("unknown channel 0x" + hex(channel) + " 0x" + hex(kind) + " at byte " + (i - 2)); }
    }
  } catch (err) {
    return { data: {}, warnings: [], errors: [err.message] };
  }
  return { data: out, warnings: [], errors: [] };
}
