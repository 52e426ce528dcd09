// Hostile codec: tries to hold about 1 GB in the V8 heap, 80 MB at a time.
function decodeUplink(input) {
  var hoard = [];
  for (var i = 0; i < 13; i++) {
    hoard.push(new Array(10000000).fill(i + 0.5));
  }
  return { data: { n: hoard.length } };
}
