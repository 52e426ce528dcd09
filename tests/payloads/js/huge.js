// Hostile codec: allocations V8's own memory limit cannot stop. First byte 0x01 asks for a
// 1 GB array of doubles in one builtin call (a fatal V8 out-of-memory), 0x02 fills a 1 GB
// typed array (outside the V8 heap); anything else decodes.
function decodeUplink(input) {
  if (input.bytes[0] === 0x01) { return { data: { n: new Array(134217728).fill(1.5).length } }; }
  if (input.bytes[0] === 0x02) { return { data: { n: new Uint8Array(1 << 30).fill(1).length } }; }
  return { data: { ok: input.bytes[0] } };
}
