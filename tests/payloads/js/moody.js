// A codec that misbehaves only on some frames, to check that a batch keeps its good
// uplinks: first byte 0xff loops forever, 0xee allocates without end, 0xdd throws,
// 0xcc returns errors, anything else decodes to {value: first byte}.
function decodeUplink(input) {
  var first = input.bytes[0];
  if (first === 0xff) { for (;;) {} }
  if (first === 0xee) {
    var hoard = [];
    for (;;) { hoard.push(new Array(100000).fill(hoard.length)); }
  }
  if (first === 0xdd) { throw new Error("bad frame " + first); }
  if (first === 0xcc) { return { errors: ["unsupported frame"], warnings: ["w1"] }; }
  return {
    data: { value: first, port: input.fPort, litres: input.variables.litres_per_pulse,
            received: input.recvTime.toISOString() },
    warnings: first === 0x01 ? ["low battery"] : []
  };
}
