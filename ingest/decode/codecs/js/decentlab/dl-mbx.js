// Decentlab DL-MBX (ultrasonic distance) decoder for the decodeUplink interface.
// Written for Hypervision from Decentlab's frame description: version byte, device id,
// sensor flags, then big-endian words for each flagged sensor. Same output as the
// built-in decoder ingest/decode/codecs/decentlab.py (variant dl-mbx).

var SENSORS = [
  { words: 2, values: [
    { key: "distance", name: "Distance", unit: "mm", convert: function (w) { return w[0]; } },
    { key: "number_of_valid_samples", name: "Number of valid samples", unit: null,
      convert: function (w) { return w[1]; } }
  ] },
  { words: 1, values: [
    { key: "battery_voltage", name: "Battery voltage", unit: "V",
      convert: function (w) { return w[0] / 1000; } }
  ] }
];

function decodeUplink(input) {
  var b = input.bytes;
  if (b.length < 5) return { errors: ["frame shorter than the 5-byte header"] };
  if (b[0] !== 2) return { errors: ["protocol version " + b[0] + " is not supported"] };
  var out = { protocol_version: b[0], device_id: (b[1] << 8) | b[2] };
  var flags = (b[3] << 8) | b[4];
  var i = 5;
  for (var s = 0; s < SENSORS.length; s++) {
    if (!((flags >> s) & 1)) continue;
    var sensor = SENSORS[s];
    if (i + 2 * sensor.words > b.length) {
      return { errors: ["frame truncated in sensor " + s + " at byte " + i] };
    }
    var words = [];
    for (var k = 0; k < sensor.words; k++) words.push((b[i + 2 * k] << 8) | b[i + 2 * k + 1]);
    for (var v = 0; v < sensor.values.length; v++) {
      var spec = sensor.values[v];
      var item = { displayName: spec.name };
      if (spec.unit !== null) item.unit = spec.unit;
      item.value = spec.convert(words);
      out[spec.key] = item;
    }
    i += 2 * sensor.words;
  }
  if (i !== b.length) return { errors: [(b.length - i) + " unexpected bytes after the flagged sensors"] };
  return { data: out, warnings: [], errors: [] };
}
